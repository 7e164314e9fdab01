import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { fromBinary } from '@bufbuild/protobuf';
import { AuditAction, type AuditEvent, AuditOutcome, events, rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';

import { insecure, type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// RFC 8693 token exchange: an application of the organization holds an ID token that the
// organization's own IdP issued to it, and exchanges it at identity's token endpoint for a
// gateway access token acting for that person — no browser. The IdP here is an HTTP server
// with an OpenID discovery document and a JWKS, signing its ID tokens with its own key, as any
// IdP does; identity reaches it over HTTP like a real one (the browser sign-in against a full
// oidc-provider IdP is test-e2e/identity/sso.e2e-spec.ts, which exchanges too).

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const APP_AT_IDP = 'acme-backend-at-idp';

let bed: OAuthTestBed;
let idp: { issuer: string; server: Server; sign(claims: JWTPayload, header?: { typ?: string }): Promise<string> };
let other: Awaited<ReturnType<typeof generateKeyPair>>;

beforeAll(async () => {
  bed = await startOAuthTestBed('identity_token_exchange');
  const keys = await generateKeyPair('ES256');
  other = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(keys.publicKey)), kid: 'idp-key-1', alg: 'ES256', use: 'sig' };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    res.setHeader('content-type', 'application/json');
    if (url.pathname === '/.well-known/openid-configuration') {
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
          code_challenge_methods_supported: ['S256'],
        }),
      );
    } else if (url.pathname === '/jwks') {
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  idp = {
    issuer,
    server,
    sign: (claims, header = {}) => {
      const now = Math.floor(Date.now() / 1_000);
      // Each claim given replaces the IdP's usual one.
      return new SignJWT({
        iss: issuer,
        aud: APP_AT_IDP,
        iat: now,
        exp: now + 600,
        sub: 'idp-person-1',
        email: 'grace@acme.test',
        email_verified: true,
        name: 'Grace',
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', kid: 'idp-key-1', ...header })
        .sign(keys.privateKey);
    },
  };
  await bed.rpcClient.request(rpc.identity.configureOrganizationSso, {
    orgId: bed.orgId,
    issuer,
    clientId: 'gateway-at-idp',
    clientSecret: 'gateway-at-idp-secret-0123456789',
    emailDomains: ['acme.test'],
  });
  await bed.configureClient(bed.confidential.applicationId, {
    method: 'client_secret_basic',
    idpClientId: APP_AT_IDP,
  });
}, 60_000);

afterAll(async () => {
  idp?.server.closeAllConnections();
  idp?.server.close();
  await bed?.stop();
});

/** POST /oauth/token with the token-exchange grant, as the confidential backend (HTTP Basic). */
async function exchange(
  params: Record<string, string>,
  client = bed.confidential.client,
  secret = bed.confidential.secret,
) {
  const response = await oauth.genericTokenEndpointRequest(
    bed.as,
    client,
    oauth.ClientSecretBasic(secret),
    GRANT,
    new URLSearchParams({ subject_token_type: ID_TOKEN, resource: bed.resource, ...params }),
    insecure,
  );
  return response;
}

async function refusal(params: Record<string, string>) {
  const response = await exchange(params);
  const body = (await response.json()) as { error?: string; error_description?: string };
  return { status: response.status, ...body };
}

const exchangedRows = async () =>
  Number(
    (
      await bed.harness.db.pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM oauth_payloads WHERE model = 'ExchangedSubjectToken'",
      )
    ).rows[0]?.n,
  );

describe('token exchange (RFC 8693)', () => {
  it("gives an access token for the person the organization's IdP vouches for, provisioned as a member", async () => {
    const subjectToken = await idp.sign({});
    const response = await exchange({ subject_token: subjectToken, scope: 'github:read:repos' });
    const tokens = await oauth.processGenericTokenEndpointResponse(bed.as, bed.confidential.client, response);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens['issued_token_type']).toBe(ACCESS_TOKEN);
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope).toBe('github:read:repos');

    // An RFC 9068 JWT for the gateway alone, naming the person and the application.
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims.aud).toBe(bed.resource);
    expect(claims['org_id']).toBe(bed.orgId);
    expect(claims['app_id']).toBe(bed.confidential.applicationId);
    const { rows } = await bed.harness.db.pool.query<{ user_id: string; org_id: string }>(
      'SELECT user_id, org_id FROM sso_accounts WHERE issuer = $1 AND subject = $2',
      [idp.issuer, 'idp-person-1'],
    );
    expect(rows).toEqual([{ user_id: claims.sub, org_id: bed.orgId }]);
    const member = await bed.harness.db.pool.query('SELECT 1 FROM memberships WHERE user_id = $1 AND org_id = $2', [
      claims.sub,
      bed.orgId,
    ]);
    expect(member.rowCount).toBe(1);

    // The person sees the application among those holding tokens for them, and a second
    // exchange (a fresh ID token) adds to the same grant rather than making another.
    const { grants } = await bed.rpcClient.request(rpc.identity.listOAuthGrants, { userId: claims.sub });
    expect(grants.map((g) => g.grantId)).toEqual([claims['grant_id']]);
    const again = await oauth.processGenericTokenEndpointResponse(
      bed.as,
      bed.confidential.client,
      await exchange({ subject_token: await idp.sign({ jti: 'second' }) }),
    );
    const second = await oauth.validateJwtAccessToken(bed.as, bed.bearer(again.access_token), bed.resource, insecure);
    expect(second.sub).toBe(claims.sub);
    expect(second['grant_id']).toBe(claims['grant_id']);
    expect(again.scope?.split(' ').sort()).toEqual(['github:read:repos']);

    // Revoking that grant (the person, from /v1/me) ends it like any other.
    await bed.rpcClient.request(rpc.identity.revokeOAuthGrant, {
      userId: claims.sub,
      grantId: claims['grant_id'] as string,
    });
    expect((await bed.rpcClient.request(rpc.identity.listOAuthGrants, { userId: claims.sub })).grants).toEqual([]);
  });

  it('exchanges an ID token once: a replay is invalid_request, however its signature is spelled', async () => {
    const audited: AuditEvent[] = [];
    const auditSub = bed.harness.nc.subscribe(events.auditRecorded.subject);
    void (async () => {
      for await (const m of auditSub) audited.push(fromBinary(events.auditRecorded.message, m.data));
    })();
    const subjectToken = await idp.sign({ jti: 'once' });
    expect((await exchange({ subject_token: subjectToken })).status).toBe(200);
    const rows = await exchangedRows();
    // The same token with the signature's unused trailing base64url bits changed: it still
    // verifies (the same signature bytes), and is still the same token.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = subjectToken.at(-1) ?? 'A';
    const respelled = subjectToken.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
    expect(respelled).not.toBe(subjectToken);
    for (const replay of [subjectToken, respelled]) {
      expect(await refusal({ subject_token: replay })).toMatchObject({
        status: 400,
        error: 'invalid_request',
        error_description: expect.stringContaining('already exchanged'),
      });
    }
    expect(await exchangedRows()).toBe(rows);
    // Issued once, refused twice: each refusal is a denial in the trail, naming the application.
    await bed.harness.nc.flush();
    auditSub.unsubscribe();
    expect(audited.map((e) => ({ action: e.action, outcome: e.outcome, errorCode: e.errorCode }))).toEqual([
      { action: AuditAction.CREDENTIAL_ISSUED, outcome: AuditOutcome.ALLOWED, errorCode: '' },
      { action: AuditAction.CREDENTIAL_ISSUED, outcome: AuditOutcome.DENIED, errorCode: 'sso_response_invalid' },
      { action: AuditAction.CREDENTIAL_ISSUED, outcome: AuditOutcome.DENIED, errorCode: 'sso_response_invalid' },
    ]);
    expect(audited.every((e) => e.applicationId === bed.confidential.applicationId)).toBe(true);
  });

  it("never exchanges an ID token issued to the gateway's own client, and one IdP client belongs to one application", async () => {
    const forTheGateway = await idp.sign({ aud: 'gateway-at-idp' });
    await bed.configureClient(bed.confidential.applicationId, {
      method: 'client_secret_basic',
      idpClientId: 'gateway-at-idp',
    });
    try {
      expect(await refusal({ subject_token: forTheGateway })).toMatchObject({
        status: 400,
        error: 'invalid_request',
        error_description: expect.stringContaining("gateway's own client"),
      });
    } finally {
      await bed.configureClient(bed.confidential.applicationId, {
        method: 'client_secret_basic',
        idpClientId: APP_AT_IDP,
      });
    }
    const agent = (await bed.rpcClient.request(rpc.identity.listApplications, { orgId: bed.orgId })).applications.find(
      (a) => a.clientId === bed.keyClient.client.client_id,
    );
    await expect(
      bed.rpcClient.request(rpc.identity.configureOAuthClient, {
        orgId: bed.orgId,
        applicationId: agent?.id ?? '',
        tokenEndpointAuthMethod: 'client_secret_basic',
        idpClientId: APP_AT_IDP,
      }),
    ).rejects.toMatchObject({ code: 'conflict' });
  });

  it('refuses every ID token not issued by the IdP to this application, for a member, lately (invalid_request, RFC 8693 §2.2.2)', async () => {
    const now = Math.floor(Date.now() / 1_000);
    const signedElsewhere = await new SignJWT({ sub: 'idp-person-1', email: 'grace@acme.test', email_verified: true })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-key-1' })
      .setIssuer(idp.issuer)
      .setAudience(APP_AT_IDP)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(other.privateKey);
    const cases: [string, string, string][] = [
      ['another client at the IdP', await idp.sign({ aud: 'someone-else' }), '"aud" claim'],
      ['several audiences, authorized party another', await idp.sign({ aud: [APP_AT_IDP, 'x'], azp: 'x' }), 'azp'],
      ['several audiences, no authorized party', await idp.sign({ aud: [APP_AT_IDP, 'x'] }), 'azp'],
      ['another issuer', await idp.sign({ iss: 'https://idp.example.com' }), '"iss" claim'],
      ['expired', await idp.sign({ iat: now - 7_200, exp: now - 3_600 }), 'expired'],
      ['issued over an hour ago', await idp.sign({ iat: now - 4_000, exp: now + 600 }), 'over an hour ago'],
      ['signed by another key', signedElsewhere, 'signature'],
      ['an access token, not an ID token', await idp.sign({}, { typ: 'at+jwt' }), 'not an ID token'],
      ['a person outside the organization', await idp.sign({ sub: 'idp-outsider', email: 'eve@evil.test' }), 'member'],
      ['an unverified address', await idp.sign({ sub: 'idp-unverified', email_verified: false }), 'member'],
      ['not a JWT', 'not-a-jwt', 'not a valid signed JWT'],
    ];
    for (const [why, subjectToken, says] of cases) {
      const answer = await refusal({ subject_token: subjectToken });
      expect({ why, ...answer }).toMatchObject({
        why,
        status: 400,
        error: 'invalid_request',
        error_description: expect.stringContaining(says),
      });
    }
    const outsiders = await bed.harness.db.pool.query(
      "SELECT 1 FROM sso_accounts WHERE subject IN ('idp-outsider', 'idp-unverified')",
    );
    expect(outsiders.rowCount).toBe(0);
  });

  it('answers a malformed exchange with the RFC 8693 error, before looking at the token', async () => {
    const subjectToken = await idp.sign({ jti: 'malformed' });
    const cases: [Record<string, string>, string][] = [
      [{ subject_token_type: ACCESS_TOKEN }, 'invalid_request'],
      [{ requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'invalid_request'],
      [{ actor_token: subjectToken, actor_token_type: ID_TOKEN }, 'invalid_request'],
      [{ resource: 'https://elsewhere.example/' }, 'invalid_target'],
      [{ audience: 'https://elsewhere.example/' }, 'invalid_target'],
      [{ scope: 'github:write:repos' }, 'invalid_scope'],
      [{ subject_token: '' }, 'invalid_request'],
    ];
    for (const [params, error] of cases) {
      expect({ params, ...(await refusal({ subject_token: subjectToken, ...params })) }).toMatchObject({
        params,
        status: 400,
        error,
      });
    }
    // None of them used the ID token up.
    expect((await exchange({ subject_token: subjectToken })).status).toBe(200);
  });

  it('is for applications the admin named at the IdP, and only confidential ones', async () => {
    const subjectToken = await idp.sign({ jti: 'not-allowed' });
    // The public client cannot use the grant at all; it may not be given an IdP client id either.
    const publicTry = await oauth.genericTokenEndpointRequest(
      bed.as,
      bed.publicClient,
      oauth.None(),
      GRANT,
      new URLSearchParams({ subject_token: subjectToken, subject_token_type: ID_TOKEN }),
      insecure,
    );
    expect(publicTry.status).toBe(400);
    expect(await publicTry.json()).toMatchObject({ error: 'unauthorized_client' });
    const publicApp = (
      await bed.rpcClient.request(rpc.identity.listApplications, { orgId: bed.orgId })
    ).applications.find((a) => a.clientId === bed.publicClient.client_id);
    await expect(
      bed.configureClient(publicApp?.id ?? '', { method: 'none', idpClientId: APP_AT_IDP }),
    ).rejects.toMatchObject({ code: 'validation_failed' });

    // Taking the IdP client id away ends token exchange for the application at once.
    await bed.configureClient(bed.confidential.applicationId, { method: 'client_secret_basic' });
    try {
      expect(await refusal({ subject_token: subjectToken })).toMatchObject({
        status: 400,
        error: 'unauthorized_client',
      });
    } finally {
      await bed.configureClient(bed.confidential.applicationId, {
        method: 'client_secret_basic',
        idpClientId: APP_AT_IDP,
      });
    }
    expect((await exchange({ subject_token: subjectToken })).status).toBe(200);
  });

  it('discovery lists the grant type', () => {
    expect(bed.as.grant_types_supported).toContain(GRANT);
  });
});
