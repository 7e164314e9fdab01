import { fromBinary } from '@bufbuild/protobuf';
import { ApplicationStatus, type AuditEvent, AuditOutcome, events, rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oauth from 'oauth4webapi';

import { UsersRepository } from '../accounts/accounts.repository.js';
import { SessionsService } from '../accounts/sessions.service.js';
import {
  type DocumentRoute,
  type MetadataDocumentServer,
  startMetadataDocumentServer,
} from './testing/metadata-document-server.js';
import { Browser, insecure, type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// Client ID Metadata Documents: an MCP client whose client_id is the https URL of its
// document. Organizations allow the URL (each gets its own application); a person's grant acts
// as their organization's application; a document that is slow, huge, on a private address,
// not matching its URL or claiming our own metadata is refused with a code, never a 500.
// Documents are served over https on 127.0.0.1 with a certificate made for the test.

let bed: OAuthTestBed;
let docs: MetadataDocumentServer;
const routes = new Map<string, ReturnType<DocumentRoute>>();
/** The popular client's URL, allowed by two organizations. */
let clientUrl: string;
let appA: { id: string; orgId: string };
let appB: { id: string; orgId: string };

const documentFor = (url: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    client_id: url,
    client_name: 'Test MCP Client',
    redirect_uris: [bed.callback],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    ...extra,
  });

async function allow(orgId: string, url: string, scopes = ['github:read:repos']) {
  const { application } = await bed.rpcClient.request(rpc.identity.createApplication, {
    orgId,
    name: `MCP client in ${orgId.slice(0, 8)}`,
    integrations: ['github'],
    scopes,
    clientMetadataUrl: url,
  });
  return { id: application?.id ?? '', orgId };
}

async function organization(name: string): Promise<string> {
  return (await bed.rpcClient.request(rpc.identity.createOrganization, { name })).organization?.id ?? '';
}

async function member(userId: string, orgId: string) {
  await bed.harness.db.pool.query(
    `INSERT INTO memberships (user_id, org_id, role, source) VALUES ($1, $2, 'member', 'sso')`,
    [userId, orgId],
  );
}

/** A new person with a gateway session. */
async function person(name: string): Promise<{ userId: string; sessionToken: string }> {
  const user = await bed.service.app
    .get(UsersRepository, { strict: false })
    .createUser({ displayName: name, webauthnUserId: `handle-${name}` });
  const session = await bed.service.app.get(SessionsService, { strict: false }).open(user.id, new Date());
  return { userId: user.id, sessionToken: session.token };
}

/** The error page the authorization endpoint answers with, and the code printed on it. */
async function refusedWith(url: string): Promise<{ status: number; code: string }> {
  const res = await fetch(
    bed.authorizationUrl({ client_id: url }, { code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }),
    { redirect: 'manual' },
  );
  const page = await res.text();
  return { status: res.status, code: /Error code: <code>([^<]+)<\/code>/.exec(page)?.[1] ?? page.slice(0, 200) };
}

/** Audit events recorded while `work` runs (and shortly after: they are published before the response). */
async function auditedDuring(work: () => Promise<unknown>): Promise<AuditEvent[]> {
  const audited: AuditEvent[] = [];
  const sub = bed.harness.nc.subscribe(events.auditRecorded.subject);
  void (async () => {
    for await (const m of sub) audited.push(fromBinary(events.auditRecorded.message, m.data));
  })();
  await bed.harness.nc.flush();
  await work();
  await new Promise((resolve) => setTimeout(resolve, 300));
  sub.unsubscribe();
  return audited;
}

/** A browser signed in to the gateway as this person. */
function browserOf(sessionToken: string): Browser {
  const browser = new Browser(bed);
  browser.cookies.set('__Host-cg_session', sessionToken);
  return browser;
}

/**
 * One authorization in `browser`: Allow on the consent page when there is one; where the
 * browser is sent back to the client (`back`), with the PKCE verifier and state 'st'.
 */
async function authorizeIn(browser: Browser, client: oauth.Client, params: Record<string, string> = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  let res = await browser.follow(
    bed.authorizationUrl(client, {
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: 'st',
      ...params,
    }),
  );
  const consented = res.status === 200;
  if (consented) {
    const action = /<form method="post" action="([^"]+)"/.exec(await res.text())?.[1] ?? '';
    res = await browser.get(action, {
      method: 'POST',
      body: 'decision=allow',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(bed.base).origin },
    });
    res = await browser.follow(new URL(res.headers.get('location') ?? '', bed.base).href);
  }
  return { back: new URL(res.headers.get('location') ?? '', bed.base), verifier, consented };
}

/** A URL served with its document and allowed by `orgId`, and the client presenting it. */
async function allowedClient(name: string, orgId: string, scopes?: string[], extra: Record<string, unknown> = {}) {
  const url = `${docs.origin()}/${name}.json`;
  routes.set(url, { body: documentFor(url, extra) });
  const app = await allow(orgId, url, scopes);
  const client: oauth.Client = { client_id: url, token_endpoint_auth_method: 'none' };
  return { url, app, client };
}

const refresh = (client: oauth.Client, token: string) =>
  oauth.refreshTokenGrantRequest(bed.as, client, oauth.None(), token, insecure);

beforeAll(async () => {
  docs = await startMetadataDocumentServer((url) => routes.get(url));
  bed = await startOAuthTestBed('identity_cimd', {
    // The test knobs are accepted under NODE_ENV=test only.
    NODE_ENV: 'test',
    OAUTH_CIMD_TEST_CA_FILE: docs.caFile,
    OAUTH_CIMD_ALLOW_LOOPBACK: 'true',
  });
  clientUrl = `${docs.origin()}/popular-client.json`;
  routes.set(clientUrl, { body: documentFor(clientUrl) });
  appA = await allow(bed.orgId, clientUrl);
  appB = await allow(await organization('Other org'), clientUrl, ['github:read:profile']);
  await member(bed.userId, bed.orgId);
}, 60_000);

afterAll(async () => {
  await bed?.stop();
  await docs?.stop();
});

describe('a metadata-URL client allowed by two organizations', () => {
  const client = (): oauth.Client => ({ client_id: clientUrl, token_endpoint_auth_method: 'none' });

  it("is announced in discovery, and gives a person's token the application of the person's organization", async () => {
    expect(bed.as['client_id_metadata_document_supported']).toBe(true);
    const { back, verifier, state, page } = await bed.authorize(client());
    // The consent page names the client as its document does, and where the document lives.
    expect(page).toContain('Test MCP Client');
    expect(page).toContain(new URL(clientUrl).host);
    expect(page).toContain(new URL(bed.callback).host);
    const tokens = await bed.exchange(client(), oauth.None(), back, verifier, state);
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims).toMatchObject({ client_id: clientUrl, org_id: appA.orgId, app_id: appA.id, sub: bed.userId });
    expect(claims['scope']).toBe('github:read:repos');

    // A refresh still names the same application.
    const refreshed = await oauth.processRefreshTokenResponse(
      bed.as,
      client(),
      await oauth.refreshTokenGrantRequest(bed.as, client(), oauth.None(), tokens.refresh_token ?? '', insecure),
    );
    const again = await oauth.validateJwtAccessToken(
      bed.as,
      bed.bearer(refreshed.access_token),
      bed.resource,
      insecure,
    );
    expect(again).toMatchObject({ org_id: appA.orgId, app_id: appA.id });

    // The grant is application A's, listed and revocable there; application B holds none.
    const listed = async (app: { id: string; orgId: string }) =>
      (
        await bed.rpcClient.request(rpc.identity.listApplicationOAuthGrants, {
          orgId: app.orgId,
          applicationId: app.id,
        })
      ).grants;
    expect((await listed(appA)).map((g) => g.userId)).toEqual([bed.userId]);
    expect(await listed(appB)).toEqual([]);
    const mine = await bed.rpcClient.request(rpc.identity.listOAuthGrants, { userId: bed.userId });
    expect(mine.grants.map((g) => g.applicationId)).toEqual([appA.id]);
  });

  it("refuses a person whose organization did not allow it, with a coded access_denied, audited in the person's organization", async () => {
    const orgC = await organization('Third org');
    const bob = await person('Bob');
    await member(bob.userId, orgC);
    const audited: AuditEvent[] = [];
    const sub = bed.harness.nc.subscribe(events.auditRecorded.subject);
    void (async () => {
      for await (const m of sub) audited.push(fromBinary(events.auditRecorded.message, m.data));
    })();
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', bob.sessionToken);
    const res = await browser.follow(
      bed.authorizationUrl(client(), {
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
        state: 'st',
      }),
    );
    const back = new URL(res.headers.get('location') ?? '');
    expect(back.pathname).toBe(new URL(bed.callback).pathname);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toMatch(/^client_not_allowed: /);
    await new Promise((resolve) => setTimeout(resolve, 300));
    sub.unsubscribe();
    expect(audited).toContainEqual(
      expect.objectContaining({
        orgId: orgC,
        userId: bob.userId,
        outcome: AuditOutcome.DENIED,
        errorCode: 'client_not_allowed',
        actorId: clientUrl,
      }),
    );
  });
});

describe('which application a person acts as, whatever the client type', () => {
  it('refuses a web client (https redirect) for a person whose organization did not allow it, coded and audited', async () => {
    const redirect = 'https://client.example/callback';
    const web = await allowedClient('web-client', bed.orgId, undefined, {
      application_type: 'web',
      redirect_uris: [redirect],
    });
    const dave = await person('Dave');
    const orgD = await organization('Dave org');
    await member(dave.userId, orgD);
    let back = new URL(bed.base);
    const audited = await auditedDuring(async () => {
      ({ back } = await authorizeIn(browserOf(dave.sessionToken), web.client, { redirect_uri: redirect }));
    });
    expect(back.origin + back.pathname).toBe(redirect);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toMatch(/^client_not_allowed: /);
    expect(audited).toContainEqual(
      expect.objectContaining({ orgId: orgD, userId: dave.userId, errorCode: 'client_not_allowed', actorId: web.url }),
    );

    // A member of the allowing organization is asked, and gets that organization's application.
    const {
      back: allowed,
      verifier,
      consented,
    } = await authorizeIn(browserOf(bed.sessionToken), web.client, {
      redirect_uri: redirect,
    });
    expect(consented).toBe(true);
    const params = oauth.validateAuthResponse(bed.as, web.client, allowed, 'st');
    const tokens = await oauth.processAuthorizationCodeResponse(
      bed.as,
      web.client,
      await oauth.authorizationCodeGrantRequest(bed.as, web.client, oauth.None(), params, redirect, verifier, {
        ...insecure,
        additionalParameters: { resource: bed.resource },
      }),
    );
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims).toMatchObject({ client_id: web.url, app_id: web.app.id, org_id: bed.orgId });
  });

  it('audits a person of no organization at all, with no organization (the person sees it by user id)', async () => {
    const erin = await person('Erin');
    let back = new URL(bed.base);
    const audited = await auditedDuring(async () => {
      ({ back } = await authorizeIn(browserOf(erin.sessionToken), { client_id: clientUrl }));
    });
    expect(back.searchParams.get('error_description')).toMatch(/^client_not_allowed: /);
    expect(audited).toContainEqual(
      expect.objectContaining({
        orgId: '',
        userId: erin.userId,
        outcome: AuditOutcome.DENIED,
        errorCode: 'client_not_allowed',
        actorId: clientUrl,
      }),
    );
  });

  it('refuses a person of two organizations that both allowed it as ambiguous, audited in both', async () => {
    const frank = await person('Frank');
    await member(frank.userId, appA.orgId);
    await member(frank.userId, appB.orgId);
    let back = new URL(bed.base);
    const audited = await auditedDuring(async () => {
      ({ back } = await authorizeIn(browserOf(frank.sessionToken), { client_id: clientUrl }));
    });
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toMatch(/^client_organization_ambiguous: /);
    const codes = audited.filter((e) => e.userId === frank.userId).map((e) => [e.orgId, e.errorCode]);
    expect(codes).toEqual(
      expect.arrayContaining([
        [appA.orgId, 'client_organization_ambiguous'],
        [appB.orgId, 'client_organization_ambiguous'],
      ]),
    );
  });

  it("gives a new grant every requested scope the person's application allows, when the old grant is another application's", async () => {
    const both = ['github:read:repos', 'github:read:profile'];
    const orgX = await organization('Mover X');
    const orgY = await organization('Mover Y');
    const mover = await allowedClient('mover', orgX, ['github:read:repos']);
    await allow(orgY, mover.url, both);
    const gina = await person('Gina');
    await member(gina.userId, orgX);
    const browser = browserOf(gina.sessionToken);
    const scope = `openid ${both.join(' ')}`;
    const first = await authorizeIn(browser, mover.client, { scope });
    const firstTokens = await bed.exchange(mover.client, oauth.None(), first.back, first.verifier, 'st');
    const firstClaims = await oauth.validateJwtAccessToken(
      bed.as,
      bed.bearer(firstTokens.access_token),
      bed.resource,
      insecure,
    );
    expect(firstClaims).toMatchObject({ org_id: orgX, scope: 'github:read:repos' });

    // Gina moves to Y; the same browser (and oidc-provider session) authorizes again.
    await bed.harness.db.pool.query('DELETE FROM memberships WHERE user_id = $1', [gina.userId]);
    await member(gina.userId, orgY);
    const second = await authorizeIn(browser, mover.client, { scope });
    expect(second.consented).toBe(true);
    const tokens = await bed.exchange(mover.client, oauth.None(), second.back, second.verifier, 'st');
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims).toMatchObject({ org_id: orgY });
    expect(String(claims['scope']).split(' ').sort()).toEqual([...both].sort());
    expect(claims['grant_id']).not.toBe(firstClaims['grant_id']);
  });
});

describe('a refresh whose grant may no longer act is refused before its token is spent', () => {
  it('a person who left the organization: invalid_grant, and the same token works once they are back (not spent, not reused)', async () => {
    const orgH = await organization('Helen org');
    const leaver = await allowedClient('leaver', orgH);
    const helen = await person('Helen');
    await member(helen.userId, orgH);
    const first = await authorizeIn(browserOf(helen.sessionToken), leaver.client);
    const tokens = await bed.exchange(leaver.client, oauth.None(), first.back, first.verifier, 'st');
    const refreshToken = tokens.refresh_token ?? '';

    await bed.harness.db.pool.query('DELETE FROM memberships WHERE user_id = $1', [helen.userId]);
    let refused: Response | undefined;
    const audited = await auditedDuring(async () => {
      refused = await refresh(leaver.client, refreshToken);
    });
    expect(refused?.status).toBe(400);
    expect(await refused?.json()).toMatchObject({ error: 'invalid_grant' });
    expect(audited.map((e) => e.errorCode)).not.toContain('refresh_token_reused');

    await member(helen.userId, orgH);
    const again = await oauth.processRefreshTokenResponse(
      bed.as,
      leaver.client,
      await refresh(leaver.client, refreshToken),
    );
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(again.access_token), bed.resource, insecure);
    expect(claims).toMatchObject({ app_id: leaver.app.id, org_id: orgH });
  });

  it('an application disabled since: invalid_grant, and no reuse is recorded', async () => {
    const orgI = await organization('Ivan org');
    const disabled = await allowedClient('disabled-later', orgI);
    const ivan = await person('Ivan');
    await member(ivan.userId, orgI);
    const first = await authorizeIn(browserOf(ivan.sessionToken), disabled.client);
    const tokens = await bed.exchange(disabled.client, oauth.None(), first.back, first.verifier, 'st');
    await bed.rpcClient.request(rpc.identity.updateApplication, {
      orgId: orgI,
      applicationId: disabled.app.id,
      status: ApplicationStatus.DISABLED,
    });
    const responses: Response[] = [];
    const audited = await auditedDuring(async () => {
      responses.push(await refresh(disabled.client, tokens.refresh_token ?? ''));
      responses.push(await refresh(disabled.client, tokens.refresh_token ?? ''));
    });
    for (const res of responses) {
      expect(res.status).toBeLessThan(500);
      expect(await res.json()).toMatchObject({ error: expect.stringMatching(/^invalid_(grant|client)$/) });
    }
    expect(audited.map((e) => e.errorCode)).not.toContain('refresh_token_reused');
  });
});

describe('a metadata document that cannot be used is a coded refusal, never a 500', () => {
  it('a URL no organization allowed is not even fetched', async () => {
    const url = `${docs.origin()}/nobody-allowed.json`;
    routes.set(url, { body: documentFor(url) });
    expect(await refusedWith(url)).toEqual({ status: 400, code: 'client_metadata_not_allowed' });
    expect(docs.requests).not.toContain(url);
  });

  it.each([
    [
      'slow (past the 2.5 s limit)',
      'slow',
      'client_metadata_timeout',
      (url: string) => ({ body: documentFor(url), delayMs: 4_000 }),
    ],
    [
      'huge (over 5 KiB)',
      'huge',
      'client_metadata_too_large',
      (url: string) => ({ body: documentFor(url, { padding: 'x'.repeat(8_000) }) }),
    ],
    [
      'not matching its URL',
      'mismatch',
      'client_metadata_mismatch',
      () => ({ body: documentFor(`${docs.origin()}/someone-else.json`) }),
    ],
    [
      'naming an organization of its own',
      'claims-org',
      'client_metadata_invalid',
      (url: string) => ({ body: documentFor(url, { org_id: bed.orgId }) }),
    ],
    [
      'huge, streamed without Content-Length',
      'huge-chunked',
      'client_metadata_too_large',
      (url: string) => ({ body: documentFor(url, { padding: 'x'.repeat(8_000) }), chunked: true }),
    ],
    [
      'without token_endpoint_auth_method (oidc-provider: client_secret is mandatory)',
      'no-auth-method',
      'client_metadata_invalid',
      (url: string) => ({ body: documentFor(url, { token_endpoint_auth_method: undefined }) }),
    ],
    [
      'authenticating with a key (private_key_jwt)',
      'private-key-jwt',
      'client_metadata_invalid',
      (url: string) => ({
        body: documentFor(url, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: {
            keys: [
              {
                kty: 'EC',
                crv: 'P-256',
                x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
                y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
              },
            ],
          },
        }),
      }),
    ],
    [
      'asking for client credentials',
      'client-credentials',
      'client_metadata_invalid',
      (url: string) => ({ body: documentFor(url, { grant_types: ['authorization_code', 'client_credentials'] }) }),
    ],
  ])(
    '%s',
    async (_what, name, code, answer) => {
      const url = `${docs.origin()}/${name}.json`;
      routes.set(url, answer(url));
      await allow(bed.orgId, url);
      const refused = await refusedWith(url);
      expect(refused.code).toBe(code);
      expect(refused.status).toBeLessThan(500);
    },
    15_000,
  );

  it.each([
    ['sector_identifier_uri', 'sector'],
    ['jwks_uri', 'jwks'],
  ])('naming a %s: refused, and nothing but the document is fetched', async (property, name) => {
    const url = `${docs.origin()}/with-${name}.json`;
    const elsewhere = `${docs.origin()}/${name}-target.json`;
    routes.set(elsewhere, { body: JSON.stringify(property === 'jwks_uri' ? { keys: [] } : [bed.callback]) });
    routes.set(url, { body: documentFor(url, { [property]: elsewhere }) });
    await allow(bed.orgId, url);
    for (let i = 0; i < 3; i += 1) {
      expect(await refusedWith(url)).toEqual({ status: 400, code: 'client_metadata_invalid' });
    }
    expect(docs.requests).not.toContain(elsewhere);
  });

  it('a cached document whose every organization stopped allowing it is refused at once', async () => {
    const { url, app } = await allowedClient('withdrawn', bed.orgId);
    await authorizeIn(browserOf(bed.sessionToken), { client_id: url });
    const fetched = docs.requests.filter((r) => r === url).length;
    expect(fetched).toBeGreaterThan(0);
    await bed.rpcClient.request(rpc.identity.updateApplication, {
      orgId: bed.orgId,
      applicationId: app.id,
      status: ApplicationStatus.DISABLED,
    });
    expect(await refusedWith(url)).toEqual({ status: 400, code: 'client_metadata_not_allowed' });
    // Refused from the cache: not fetched again.
    expect(docs.requests.filter((r) => r === url).length).toBe(fetched);
  });

  it('the admin API refuses metadata URLs on IP addresses and localhost names (loopback only with the test knob)', async () => {
    for (const url of [
      'https://10.0.0.1/client.json',
      'https://8.8.8.8/client.json',
      'https://[fd00::1]/client.json',
      'https://foo.localhost/client.json',
    ]) {
      await expect(allow(bed.orgId, url)).rejects.toMatchObject({ code: 'validation_failed' });
    }
    await expect(allow(bed.orgId, 'https://localhost/client.json')).resolves.toMatchObject({ orgId: bed.orgId });
  });

  it('on a private address (127.0.0.2: only 127.0.0.1 is let through, for tests)', async () => {
    const url = `${docs.origin('127.0.0.2')}/private.json`;
    routes.set(url, { body: documentFor(url) });
    await allow(bed.orgId, url);
    const refused = await refusedWith(url);
    expect(refused.code).toBe('client_metadata_private_address');
    expect(refused.status).toBeLessThan(500);
  });
});
