import { webcrypto } from 'node:crypto';

import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { type RpcClient } from '@context-gateway/messaging';
import {
  ActorKind,
  ApplicationStatus,
  AuditAction,
  type AuditEvent,
  events,
  rpc,
  TokenRevocationKind,
} from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import type { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as oauth from 'oauth4webapi';

import { SessionsService } from '../accounts/sessions.service.js';
import { newClientSecret } from './oauth-clients.js';
import { Browser, insecure, type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// identity's authorization server, booted as main.ts boots it, driven by oauth4webapi exactly
// as an application backend would drive it (testing/oauth-test-bed.ts). The attacks of
// RFC 9700 have a file of their own: rfc9700-attacks.int-spec.ts.

let bed: OAuthTestBed;
let harness: ServiceHarness;
let service: RunningService;
let base: string;
let resource: string;
let as: oauth.AuthorizationServer;
let callback: string;
let confidential: OAuthTestBed['confidential'];
let publicClient: oauth.Client;
let keyClient: { client: oauth.Client; key: webcrypto.CryptoKey; kid: string };
let orgId: string;
let rpcClient: RpcClient;
let sessionToken: string;
let userId: string;

const authorizationUrl: OAuthTestBed['authorizationUrl'] = (...args) => bed.authorizationUrl(...args);
const authorize: OAuthTestBed['authorize'] = (...args) => bed.authorize(...args);
const exchange: OAuthTestBed['exchange'] = (...args) => bed.exchange(...args);
const bearer: OAuthTestBed['bearer'] = (token) => bed.bearer(token);
const payloadCount = () => bed.payloadCount();

beforeAll(async () => {
  bed = await startOAuthTestBed('identity_oauth');
  ({ harness, service, base, resource, as, callback, confidential, publicClient, keyClient, orgId, rpcClient } = bed);
  ({ sessionToken, userId } = bed);
}, 60_000);

afterAll(async () => {
  await bed?.stop();
});

describe('discovery', () => {
  it('publishes the issuer on the gateway origin, S256 only, the token features and no registration', () => {
    expect(as.issuer).toBe(`${base}/oauth`);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']),
    );
    expect(as.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['none', 'client_secret_basic', 'private_key_jwt']),
    );
    expect(as.token_endpoint_auth_methods_supported).not.toContain('client_secret_post');
    expect(as.introspection_endpoint).toBe(`${base}/oauth/token/introspection`);
    expect(as.revocation_endpoint).toBe(`${base}/oauth/token/revocation`);
    expect(as.registration_endpoint).toBeUndefined();
  });

  it('serves a JWKS of public keys only', async () => {
    const jwks = (await (await fetch(as.jwks_uri ?? '')).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.map((k) => k['alg']).sort()).toEqual(['ES256', 'RS256']);
    for (const key of jwks.keys) expect(key['d']).toBeUndefined();
  });
});

describe('authorization code + PKCE, on behalf of a signed-in person', () => {
  it('sends a browser without a gateway session to the passkey sign-in page, then back', async () => {
    const browser = new Browser(bed);
    const res = await browser.follow(
      authorizationUrl(publicClient, {
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
      }),
    );
    expect(res.status).toBe(303);
    const signIn = new URL(res.headers.get('location') ?? '', base);
    expect(signIn.pathname).toBe('/v1/auth/signin');
    expect(signIn.searchParams.get('return_to')).toMatch(/^\/oauth\/interaction\/[\w-]+$/);
  });

  it('names the application, the redirect host and each capability on the consent page', async () => {
    const { page } = await authorize(publicClient);
    expect(page).toContain('Acme CLI wants to access your Context Gateway data');
    expect(page).toContain(new URL(callback).host);
    expect(page).toContain('Read your github repos');
    expect(page).toContain('(github:read:repos)');
  });

  it('issues a JWT access token for the gateway only, and refreshes with rotation (public client)', async () => {
    const { back, verifier, state } = await authorize(publicClient);
    expect(back.searchParams.get('iss')).toBe(`${base}/oauth`); // RFC 9207
    const tokens = await exchange(publicClient, oauth.None(), back, verifier, state);
    expect(tokens.token_type).toBe('bearer');
    // The token response's scope is the access token's: the gateway's capabilities.
    expect(tokens.scope).toBe('github:read:repos');
    expect(tokens.id_token).toBeDefined();

    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    expect(claims).toMatchObject({
      iss: `${base}/oauth`,
      aud: resource,
      sub: userId,
      client_id: publicClient.client_id,
    });
    expect(claims['scope']).toContain('github:read:repos');
    expect(claims['app_id']).toBeDefined();
    // Signed for the gateway and nothing else: another audience does not accept it.
    await expect(
      oauth.validateJwtAccessToken(as, bearer(tokens.access_token), 'https://other.example', insecure),
    ).rejects.toThrow();

    const first = tokens.refresh_token ?? '';
    expect(first).not.toBe('');
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), first, insecure),
    );
    expect(refreshed.refresh_token).toBeDefined();
    expect(refreshed.refresh_token).not.toBe(first);
    await oauth.validateJwtAccessToken(as, bearer(refreshed.access_token), resource, insecure);
  });

  it('revokes the whole family when a spent refresh token is presented again', async () => {
    const audited: AuditEvent[] = [];
    const auditSub = harness.nc.subscribe(events.auditRecorded.subject);
    void (async () => {
      for await (const m of auditSub) audited.push(fromBinary(events.auditRecorded.message, m.data));
    })();
    const { back, verifier, state } = await authorize(publicClient);
    const tokens = await exchange(publicClient, oauth.None(), back, verifier, state);
    const spent = tokens.refresh_token ?? '';
    const rotated = await oauth.processRefreshTokenResponse(
      as,
      publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), spent, insecure),
    );
    const announced = harness.nc.subscribe(events.tokensRevoked.subject, { max: 1 });
    const replay = await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), spent, insecure);
    await expect(oauth.processRefreshTokenResponse(as, publicClient, replay)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // Before the refusal answered, gateways were told: the family's access tokens are void.
    const claims = await oauth.validateJwtAccessToken(as, bearer(rotated.access_token), resource, insecure);
    expect(claims['grant_id']).toEqual(expect.any(String));
    let data: Uint8Array = new Uint8Array();
    for await (const m of announced) data = m.data;
    const revoked = fromBinary(events.tokensRevoked.message, data);
    expect(revoked).toMatchObject({ orgId, kind: TokenRevocationKind.GRANT, subjectId: claims['grant_id'] });
    expect(timestampDate(revoked.revokedAt!).getTime()).toBeGreaterThanOrEqual(claims.iat * 1_000);
    // Audited, each naming the application and the person it delegates for, before each answer.
    auditSub.unsubscribe();
    const trail = audited.map((e) => ({
      action: e.action,
      errorCode: e.errorCode,
      userId: e.userId,
      actorKind: e.actorKind,
      actorId: e.actorId,
      resource: e.resource,
    }));
    const who = { userId, actorKind: ActorKind.OAUTH_CLIENT, actorId: publicClient.client_id };
    const grant = `oauth_grant:${claims['grant_id'] as string}`;
    expect(trail).toEqual([
      { ...who, action: AuditAction.CREDENTIAL_ISSUED, errorCode: '', resource: grant },
      { ...who, action: AuditAction.CREDENTIAL_ISSUED, errorCode: '', resource: grant },
      { ...who, action: AuditAction.REVOCATION, errorCode: 'refresh_token_reused', resource: grant },
    ]);
    expect(audited.every((e) => e.applicationId !== '' && e.orgId === orgId)).toBe(true);
    expect(audited.map((e) => e.operation)).toEqual(
      ['/oauth/token authorization_code', '/oauth/token refresh_token', '/oauth/token refresh_token'].map(
        (o) => `POST ${o}`,
      ),
    );
    // The legitimate holder's current token dies with the family.
    const next = await oauth.refreshTokenGrantRequest(
      as,
      publicClient,
      oauth.None(),
      rotated.refresh_token ?? '',
      insecure,
    );
    await expect(oauth.processRefreshTokenResponse(as, publicClient, next)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('lets a confidential client introspect and revoke its refresh token', async () => {
    const auth = oauth.ClientSecretBasic(confidential.secret);
    const { back, verifier, state } = await authorize(confidential.client);
    const tokens = await exchange(confidential.client, auth, back, verifier, state);
    const refresh = tokens.refresh_token ?? '';

    const introspect = async () =>
      oauth.processIntrospectionResponse(
        as,
        confidential.client,
        await oauth.introspectionRequest(as, confidential.client, auth, refresh, insecure),
      );
    expect(await introspect()).toMatchObject({ active: true, client_id: confidential.client.client_id, sub: userId });
    // Another client learns nothing about this token.
    const stranger = await oauth.processIntrospectionResponse(
      as,
      publicClient,
      await oauth.introspectionRequest(as, publicClient, oauth.None(), refresh, insecure),
    );
    expect(stranger.active).toBe(false);

    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, confidential.client, auth, refresh, insecure),
    );
    expect((await introspect()).active).toBe(false);
    const after = await oauth.refreshTokenGrantRequest(as, confidential.client, auth, refresh, insecure);
    await expect(oauth.processRefreshTokenResponse(as, confidential.client, after)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('refuses a confidential client with a wrong secret', async () => {
    const { back, verifier, state } = await authorize(confidential.client);
    await expect(
      exchange(confidential.client, oauth.ClientSecretBasic(newClientSecret().secret), back, verifier, state),
    ).rejects.toMatchObject({ status: 401, cause: [{ parameters: { error: 'invalid_client' } }] });
  });
});

describe('client credentials: an application acting as itself', () => {
  it('issues a gateway token whose subject is the application', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      confidential.client,
      oauth.ClientSecretBasic(confidential.secret),
      new URLSearchParams({ scope: 'github:read:repos', resource }),
      insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(as, confidential.client, response);
    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    expect(claims).toMatchObject({
      sub: confidential.client.client_id,
      aud: resource,
      app_id: confidential.applicationId,
    });
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('is not offered to a public client', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      publicClient,
      oauth.None(),
      new URLSearchParams({ resource }),
      insecure,
    );
    // RFC 6749 §5.2 (oidc-provider's own answer, invalid_request, is mapped).
    await expect(oauth.processClientCredentialsResponse(as, publicClient, response)).rejects.toMatchObject({
      error: 'unauthorized_client',
      cause: { error_description: 'requested grant type is not allowed for this client' },
    });
  });

  it('refuses a resource other than the gateway', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      confidential.client,
      oauth.ClientSecretBasic(confidential.secret),
      new URLSearchParams({ resource: 'https://other.example/' }),
      insecure,
    );
    await expect(oauth.processClientCredentialsResponse(as, confidential.client, response)).rejects.toMatchObject({
      error: 'invalid_target',
    });
  });
});

describe('private_key_jwt: an application proving itself with its own key', () => {
  const grant = (key: webcrypto.CryptoKey, kid: string) =>
    oauth.clientCredentialsGrantRequest(
      as,
      keyClient.client,
      oauth.PrivateKeyJwt({ key, kid }),
      new URLSearchParams({ scope: 'github:read:repos', resource }),
      insecure,
    );

  it('issues a token for an assertion signed with the registered key', async () => {
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      keyClient.client,
      await grant(keyClient.key, keyClient.kid),
    );
    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    expect(claims.sub).toBe(keyClient.client.client_id);
  });

  it('refuses an assertion signed with another key', async () => {
    const other = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    await expect(
      oauth.processClientCredentialsResponse(as, keyClient.client, await grant(other.privateKey, keyClient.kid)),
    ).rejects.toMatchObject({ status: 401, error: 'invalid_client' });
  });
});

describe('configuring an application as a client', () => {
  const configure: OAuthTestBed['configureClient'] = (...args) => bed.configureClient(...args);

  it('refuses private key material, an unknown method, and another org', async () => {
    const jwk = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'private' };
    await expect(
      configure(confidential.applicationId, { method: 'private_key_jwt', jwksJson: JSON.stringify({ keys: [jwk] }) }),
    ).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(configure(confidential.applicationId, { method: 'client_secret_post' })).rejects.toMatchObject({
      code: 'validation_failed',
    });
    await expect(
      rpcClient.request(rpc.identity.configureOAuthClient, {
        orgId: '00000000-0000-4000-8000-000000000000',
        applicationId: confidential.applicationId,
        tokenEndpointAuthMethod: 'none',
      }),
    ).rejects.toMatchObject({ code: 'not_found' });
  });

  it('rotating the secret stops the old one on the next request', async () => {
    const { clientSecret } = await configure(confidential.applicationId, {
      method: 'client_secret_basic',
      rotateSecret: true,
    });
    const request = (secret: string) =>
      oauth.clientCredentialsGrantRequest(
        as,
        confidential.client,
        oauth.ClientSecretBasic(secret),
        new URLSearchParams({ resource }),
        insecure,
      );
    try {
      await expect(
        oauth.processClientCredentialsResponse(as, confidential.client, await request(confidential.secret)),
      ).rejects.toMatchObject({ status: 401 });
      await oauth.processClientCredentialsResponse(as, confidential.client, await request(clientSecret));
    } finally {
      confidential.secret = clientSecret;
    }
  });
});

describe("a person's grants: the applications holding tokens for them", () => {
  it('lists the grant with its application and scopes, and revoking it ends its tokens at once', async () => {
    const { back, verifier, state } = await authorize(publicClient);
    const tokens = await exchange(publicClient, oauth.None(), back, verifier, state);
    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    const grantId = claims['grant_id'] as string;

    const { grants } = await rpcClient.request(rpc.identity.listOAuthGrants, { userId });
    const listed = grants.find((g) => g.grantId === grantId);
    expect(listed).toMatchObject({ orgId, applicationId: expect.any(String), scopes: ['github:read:repos'] });
    expect(listed?.applicationName).not.toBe('');

    // Nobody else's: another person asking is not_found, and nothing is revoked.
    await expect(
      rpcClient.request(rpc.identity.revokeOAuthGrant, { userId: '00000000-0000-4000-8000-000000000000', grantId }),
    ).rejects.toMatchObject({ code: 'not_found' });

    const announced = harness.nc.subscribe(events.tokensRevoked.subject, { max: 1 });
    const { grant } = await rpcClient.request(rpc.identity.revokeOAuthGrant, { userId, grantId });
    expect(grant?.grantId).toBe(grantId);
    let data: Uint8Array = new Uint8Array();
    for await (const m of announced) data = m.data;
    expect(fromBinary(events.tokensRevoked.message, data)).toMatchObject({
      kind: TokenRevocationKind.GRANT,
      subjectId: grantId,
    });
    // Its refresh token is gone, and the grant is no longer listed.
    const refresh = await oauth.refreshTokenGrantRequest(
      as,
      publicClient,
      oauth.None(),
      tokens.refresh_token ?? '',
      insecure,
    );
    await expect(oauth.processRefreshTokenResponse(as, publicClient, refresh)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const after = await rpcClient.request(rpc.identity.listOAuthGrants, { userId });
    expect(after.grants.map((g) => g.grantId)).not.toContain(grantId);
    await expect(rpcClient.request(rpc.identity.revokeOAuthGrant, { userId, grantId })).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});

describe("an admin's view of an application's grants", () => {
  it("lists every person's grant of the application and revokes all its tokens", async () => {
    const auth = oauth.ClientSecretBasic(confidential.secret);
    const { back, verifier, state } = await authorize(confidential.client);
    const tokens = await exchange(confidential.client, auth, back, verifier, state);
    const app = { orgId, applicationId: confidential.applicationId };

    const { grants } = await rpcClient.request(rpc.identity.listApplicationOAuthGrants, app);
    expect(grants).toEqual(
      expect.arrayContaining([expect.objectContaining({ userId, applicationId: confidential.applicationId })]),
    );
    // Org-scoped: the same application asked under another org is not_found.
    await expect(
      rpcClient.request(rpc.identity.listApplicationOAuthGrants, {
        ...app,
        orgId: '00000000-0000-4000-8000-000000000000',
      }),
    ).rejects.toMatchObject({ code: 'not_found' });

    const announced = harness.nc.subscribe(events.tokensRevoked.subject, { max: 1 });
    const { revokedGrants } = await rpcClient.request(rpc.identity.revokeApplicationOAuthTokens, app);
    expect(revokedGrants).toBeGreaterThanOrEqual(1);
    let data: Uint8Array = new Uint8Array();
    for await (const m of announced) data = m.data;
    expect(fromBinary(events.tokensRevoked.message, data)).toMatchObject({
      kind: TokenRevocationKind.APPLICATION,
      subjectId: confidential.applicationId,
    });
    const refresh = await oauth.refreshTokenGrantRequest(
      as,
      confidential.client,
      auth,
      tokens.refresh_token ?? '',
      insecure,
    );
    await expect(oauth.processRefreshTokenResponse(as, confidential.client, refresh)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    expect((await rpcClient.request(rpc.identity.listApplicationOAuthGrants, app)).grants).toEqual([]);
  });
});

describe('changes that take effect on the next request', () => {
  it('asks for the passkey again when the authorization says prompt=login and the session is older', async () => {
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', sessionToken);
    const res = await browser.follow(
      authorizationUrl(publicClient, {
        prompt: 'login',
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
      }),
    );
    expect(res.status).toBe(303);
    const signIn = new URL(res.headers.get('location') ?? '', base);
    expect(signIn.pathname).toBe('/v1/auth/signin');
    expect(signIn.searchParams.get('prompt')).toBe('login');
    // Coming back with the same (older) session asks again; after a fresh passkey use it goes on.
    const returnTo = signIn.searchParams.get('return_to') ?? '';
    const again = await browser.follow(returnTo);
    expect(new URL(again.headers.get('location') ?? '', base).pathname).toBe('/v1/auth/signin');
    const fresh = await service.app.get(SessionsService, { strict: false }).open(userId, new Date());
    browser.cookies.set('__Host-cg_session', fresh.token);
    const consent = await browser.follow(returnTo);
    expect(consent.status).toBe(200);
    expect(await consent.text()).toContain('Acme CLI wants to access your Context Gateway data');
  });

  it('refuses a disabled application as an unknown client', async () => {
    const { back, verifier, state } = await authorize(confidential.client);
    await rpcClient.request(rpc.identity.updateApplication, {
      orgId,
      applicationId: confidential.applicationId,
      status: ApplicationStatus.DISABLED,
    });
    try {
      await expect(
        exchange(confidential.client, oauth.ClientSecretBasic(confidential.secret), back, verifier, state),
      ).rejects.toMatchObject({ status: 401, cause: [{ parameters: { error: 'invalid_client' } }] });
    } finally {
      await rpcClient.request(rpc.identity.updateApplication, {
        orgId,
        applicationId: confidential.applicationId,
        status: ApplicationStatus.ACTIVE,
      });
    }
  });
});

describe('refusals, each with its RFC error and nothing stored', () => {
  it('answers bad input with an OAuth error, never a server error', async () => {
    const endpoints = [as.token_endpoint, as.introspection_endpoint, as.revocation_endpoint, as.authorization_endpoint];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints.map((e) => e ?? '')),
        fc.dictionary(
          fc.constantFrom(
            'grant_type',
            'code',
            'client_id',
            'redirect_uri',
            'code_verifier',
            'token',
            'resource',
            'scope',
            'refresh_token',
          ),
          fc.oneof(
            fc.string({ maxLength: 300 }),
            fc.constantFrom(publicClient.client_id, callback, resource, 'authorization_code'),
          ),
        ),
        fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'text/plain'),
        async (endpoint, fields, contentType) => {
          const body =
            contentType === 'application/json' ? JSON.stringify(fields) : new URLSearchParams(fields).toString();
          const res = await fetch(endpoint, {
            method: 'POST',
            headers: { 'content-type': contentType },
            body,
            redirect: 'manual',
          });
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: Number(process.env['FUZZ_RUNS'] ?? 100) },
    );
  });

  it('answers invalid_client for an unknown client id', async () => {
    const res = await new Browser(bed).get(
      authorizationUrl(
        { client_id: 'cg_app_unknown' },
        { code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' },
      ),
    );
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<code>invalid_client</code>');
  });

  it('sends the person back with access_denied when they deny, and stores no grant', async () => {
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', sessionToken);
    const res = await browser.follow(
      authorizationUrl(publicClient, {
        state: 'deny-1',
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
      }),
    );
    const action = /<form method="post" action="([^"]+)"/.exec(await res.text())?.[1] ?? '';
    const grantsBefore = await harness.db.pool.query("SELECT 1 FROM oauth_payloads WHERE model = 'Grant'");
    const denied = await browser.get(action, {
      method: 'POST',
      body: 'decision=deny',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(base).origin },
    });
    const back = new URL(
      (await browser.follow(new URL(denied.headers.get('location') ?? '', base).href)).headers.get('location') ?? '',
    );
    expect(back.origin + back.pathname).toBe(callback);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('deny-1');
    expect(back.searchParams.get('code')).toBeNull();
    const grantsAfter = await harness.db.pool.query("SELECT 1 FROM oauth_payloads WHERE model = 'Grant'");
    expect(grantsAfter.rowCount).toBe(grantsBefore.rowCount);
  });

  it('shows an expired-request page for an interaction this browser did not start', async () => {
    const res = await new Browser(bed).get(`${base}/oauth/interaction/not-a-real-one`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<code>oauth_interaction_expired</code>');
  });

  it('refuses a consent form posted from another origin', async () => {
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', sessionToken);
    const res = await browser.follow(
      authorizationUrl(publicClient, {
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
      }),
    );
    const action = /<form method="post" action="([^"]+)"/.exec(await res.text())?.[1] ?? '';
    const before = await payloadCount();
    const posted = await browser.get(action, {
      method: 'POST',
      body: 'decision=allow',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    });
    expect(posted.status).toBe(403);
    expect(await payloadCount()).toBe(before);
  });
});
