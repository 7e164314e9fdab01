import { fromBinary } from '@bufbuild/protobuf';
import { type AuditEvent, events, rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oauth from 'oauth4webapi';

import { insecure, type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// Dynamic client registration (RFC 7591): off by default; on, only with an initial access
// token an organization admin issued, and the client becomes an application of that org.

describe('registration off (the default)', () => {
  let bed: OAuthTestBed;
  beforeAll(async () => {
    bed = await startOAuthTestBed('identity_dcr_off');
  }, 60_000);
  afterAll(async () => {
    await bed?.stop();
  });

  it('has no registration endpoint, in discovery or at its path', async () => {
    expect(bed.as.registration_endpoint).toBeUndefined();
    const res = await fetch(`${bed.base}/oauth/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [bed.callback] }),
    });
    expect(res.status).toBe(404);
  });
});

describe('registration on', () => {
  let bed: OAuthTestBed;
  let registration: string;
  const audited: AuditEvent[] = [];

  const issue = async (orgId: string, options: { singleUse?: boolean; expiresInSeconds?: number } = {}) =>
    bed.rpcClient.request(rpc.identity.issueOAuthRegistrationToken, {
      orgId,
      issuedBy: 'operator',
      expiresInSeconds: options.expiresInSeconds ?? 600,
      singleUse: options.singleUse ?? false,
    });
  const register = (metadata: Record<string, unknown>, token?: string) =>
    fetch(registration, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(metadata),
    });

  beforeAll(async () => {
    bed = await startOAuthTestBed('identity_dcr_on', { OAUTH_DYNAMIC_REGISTRATION: 'true' });
    registration = bed.as.registration_endpoint ?? '';
    const sub = bed.harness.nc.subscribe(events.auditRecorded.subject);
    void (async () => {
      for await (const m of sub) audited.push(fromBinary(events.auditRecorded.message, m.data));
    })();
  }, 60_000);
  afterAll(async () => {
    await bed?.stop();
  });

  it('advertises the registration endpoint', () => {
    expect(registration).toBe(`${bed.base}/oauth/reg`);
  });

  it('registers a public client as an application of the token’s organization, which then works for a person', async () => {
    const { token, registrationToken } = await issue(bed.orgId);
    expect(token).toMatch(/^cg_iat_/);
    const response = await oauth.dynamicClientRegistrationRequest(
      bed.as,
      { client_name: 'Registered CLI', redirect_uris: [bed.callback], token_endpoint_auth_method: 'none' },
      { initialAccessToken: token, ...insecure },
    );
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
    expect(registered.client_id).toMatch(/^cg_app_/);
    expect(registered).toMatchObject({
      redirect_uris: [bed.callback],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    });
    // Our own properties stay ours; no RFC 7592 management token is handed out.
    for (const key of ['org_id', 'capabilities', 'registration_token_id', 'registration_access_token']) {
      expect(registered[key]).toBeUndefined();
    }

    // An application of this organization, with no capabilities until its admin grants some.
    const { applications } = await bed.rpcClient.request(rpc.identity.listApplications, { orgId: bed.orgId });
    const app = applications.find((a) => a.clientId === registered.client_id);
    expect(app).toMatchObject({ name: 'Registered CLI', scopes: [], callbackUrls: [bed.callback] });
    await bed.rpcClient.request(rpc.identity.updateApplication, {
      orgId: bed.orgId,
      applicationId: app?.id ?? '',
      integrations: { values: ['github'] },
      scopes: { values: ['github:read:repos'] },
    });

    const client: oauth.Client = { client_id: registered.client_id, token_endpoint_auth_method: 'none' };
    const { back, verifier, state, page } = await bed.authorize(client);
    expect(page).toContain('Registered CLI');
    const tokens = await bed.exchange(client, oauth.None(), back, verifier, state);
    expect(tokens.scope).toBe('github:read:repos');
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims).toMatchObject({
      sub: bed.userId,
      client_id: registered.client_id,
      org_id: bed.orgId,
      app_id: app?.id,
    });
    expect(tokens.refresh_token).toBeDefined();

    // Audited: which client, registered with which token (and so by whose issue).
    const deadline = Date.now() + 5_000;
    while (!audited.some((e) => e.actorId === registered.client_id) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const event = audited.find((e) => e.actorId === registered.client_id && e.resource.startsWith('oauth_client:'));
    expect(event).toMatchObject({ orgId: bed.orgId, applicationId: app?.id });
    expect(event?.operation).toContain(`initial_access_token:${registrationToken?.id}`);
    expect(event?.operation).toContain('issued_by:operator');
  });

  it('registers a confidential client with a secret it can use, and no client credentials grant', async () => {
    const { token } = await issue(bed.orgId);
    const res = await register(
      { redirect_uris: [bed.callback], token_endpoint_auth_method: 'client_secret_basic' },
      token,
    );
    expect(res.status).toBe(201);
    const body = (await res.json()) as { client_id: string; client_secret: string };
    expect(body.client_secret).toMatch(/^cg_cs_/);
    const client: oauth.Client = { client_id: body.client_id };
    const cc = await oauth.clientCredentialsGrantRequest(
      bed.as,
      client,
      oauth.ClientSecretBasic(body.client_secret),
      new URLSearchParams({ resource: bed.resource }),
      insecure,
    );
    await expect(oauth.processClientCredentialsResponse(bed.as, client, cc)).rejects.toMatchObject({
      error: 'unauthorized_client',
    });
    const { back, verifier, state } = await bed.authorize(client, { scope: 'openid' });
    const tokens = await bed.exchange(client, oauth.ClientSecretBasic(body.client_secret), back, verifier, state);
    expect(tokens.access_token).toBeDefined();
  });

  it('gives no secret to a client that does not authenticate with one, whatever algorithm it names', async () => {
    const { token } = await issue(bed.orgId);
    const res = await register(
      { redirect_uris: [bed.callback], token_endpoint_auth_method: 'none', id_token_signed_response_alg: 'HS256' },
      token,
    );
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ token_endpoint_auth_method: 'none' });
    expect(body).not.toHaveProperty('client_secret');
    expect(body).not.toHaveProperty('id_token_signed_response_alg', 'HS256');
  });

  it('refuses registration without a valid initial access token: 401 invalid_token', async () => {
    const metadata = { redirect_uris: [bed.callback], token_endpoint_auth_method: 'none' };
    const expectRefused = async (token: string | undefined) => {
      const res = await register(metadata, token);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
    };
    await expectRefused(undefined);
    await expectRefused('cg_iat_' + 'A'.repeat(43));

    const single = await issue(bed.orgId, { singleUse: true });
    expect((await register(metadata, single.token)).status).toBe(201);
    await expectRefused(single.token);

    const revoked = await issue(bed.orgId);
    await bed.rpcClient.request(rpc.identity.revokeOAuthRegistrationToken, {
      orgId: bed.orgId,
      registrationTokenId: revoked.registrationToken?.id ?? '',
    });
    await expectRefused(revoked.token);

    const expiring = await issue(bed.orgId, { expiresInSeconds: 60 });
    await bed.harness.db.pool.query(
      `UPDATE oauth_registration_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [expiring.registrationToken?.id],
    );
    await expectRefused(expiring.token);
  });

  it('lets one single-use token register exactly one client when raced', async () => {
    const { token } = await issue(bed.orgId, { singleUse: true });
    const metadata = { redirect_uris: [bed.callback], token_endpoint_auth_method: 'none' };
    const statuses = (await Promise.all([1, 2, 3].map(() => register(metadata, token)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(2);
  });

  it('refuses metadata outside what an application may be, with RFC 7591 codes, and spends nothing', async () => {
    const { token } = await issue(bed.orgId, { singleUse: true });
    const cases: [Record<string, unknown>, string][] = [
      [{ redirect_uris: ['http://app.example/cb'] }, 'invalid_redirect_uri'],
      [{ redirect_uris: ['https://app.example/cb#frag'] }, 'invalid_redirect_uri'],
      [{ redirect_uris: [] }, 'invalid_redirect_uri'],
      [{ redirect_uris: Array.from({ length: 11 }, (_, i) => `https://app.example/${i}`) }, 'invalid_redirect_uri'],
      [{ redirect_uris: [bed.callback], grant_types: ['client_credentials'] }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], grant_types: ['implicit'] }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], response_types: ['token'] }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], token_endpoint_auth_method: 'client_secret_post' }, 'invalid_client_metadata'],
      [
        {
          redirect_uris: [bed.callback],
          token_endpoint_auth_method: 'private_key_jwt',
          jwks_uri: 'https://app.example/jwks',
        },
        'invalid_client_metadata',
      ],
      [{ redirect_uris: [bed.callback], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], sector_identifier_uri: 'https://app.example/s' }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], org_id: '00000000-0000-0000-0000-000000000000' }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], capabilities: ['github:read:repos'] }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], client_name: 'x'.repeat(20_000) }, 'invalid_client_metadata'],
      [{ redirect_uris: [bed.callback], client_name: '' }, 'invalid_client_metadata'],
    ];
    for (const [metadata, error] of cases) {
      const res = await register(metadata, token);
      expect({ metadata, status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual({
        metadata,
        status: 400,
        error,
      });
    }
    // Not JSON, or not an object: a coded 400, never a 500.
    const notJson = await fetch(registration, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: '[1,2',
    });
    expect(notJson.status).toBe(400);
    // Every refusal left the single-use token unspent.
    expect((await register({ redirect_uris: [bed.callback], token_endpoint_auth_method: 'none' }, token)).status).toBe(
      201,
    );
  });

  it('keeps tokens and registered clients to their organization', async () => {
    const { organization: other } = await bed.rpcClient.request(rpc.identity.createOrganization, { name: 'Other org' });
    const otherId = other?.id ?? '';
    const { token } = await issue(otherId);
    const res = await register({ redirect_uris: [bed.callback], token_endpoint_auth_method: 'none' }, token);
    const { client_id: clientId } = (await res.json()) as { client_id: string };
    const inOther = await bed.rpcClient.request(rpc.identity.listApplications, { orgId: otherId });
    expect(inOther.applications.map((a) => a.clientId)).toEqual([clientId]);
    // The first organization's admin sees neither the client nor the other org's tokens.
    const inFirst = await bed.rpcClient.request(rpc.identity.listApplications, { orgId: bed.orgId });
    expect(inFirst.applications.map((a) => a.clientId)).not.toContain(clientId);
    const firstTokens = await bed.rpcClient.request(rpc.identity.listOAuthRegistrationTokens, { orgId: bed.orgId });
    expect(firstTokens.registrationTokens.every((t) => t.orgId === bed.orgId)).toBe(true);
    const otherTokens = await bed.rpcClient.request(rpc.identity.listOAuthRegistrationTokens, { orgId: otherId });
    expect(otherTokens.registrationTokens).toHaveLength(1);
    expect(otherTokens.registrationTokens[0]).toMatchObject({ useCount: 1, issuedBy: 'operator' });
    await expect(
      bed.rpcClient.request(rpc.identity.revokeOAuthRegistrationToken, {
        orgId: bed.orgId,
        registrationTokenId: otherTokens.registrationTokens[0]?.id ?? '',
      }),
    ).rejects.toMatchObject({ code: 'not_found' });
  });
});
