import { fromBinary } from '@bufbuild/protobuf';
import { type AuditEvent, AuditOutcome, events, rpc } from '@context-gateway/proto';
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

beforeAll(async () => {
  docs = await startMetadataDocumentServer((url) => routes.get(url));
  bed = await startOAuthTestBed('identity_cimd', {
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

  it('on a private address (127.0.0.2: only 127.0.0.1 is let through, for tests)', async () => {
    const url = `${docs.origin('127.0.0.2')}/private.json`;
    routes.set(url, { body: documentFor(url) });
    await allow(bed.orgId, url);
    const refused = await refusedWith(url);
    expect(refused.code).toBe('client_metadata_private_address');
    expect(refused.status).toBeLessThan(500);
  });
});
