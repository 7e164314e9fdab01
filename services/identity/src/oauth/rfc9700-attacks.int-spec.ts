import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oauth from 'oauth4webapi';

import { Browser, insecure, type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// The attacks of RFC 9700 (OAuth 2.0 Security Best Current Practice) that concern an
// authorization server, each tried against identity's as an attacker would: every one fails
// the way the RFC asks, and the refused requests store nothing (no code, grant or token).
// Not here, and why:
// - §4.10 sender-constrained access tokens (DPoP, mTLS): not offered; access tokens are
//   audience-restricted (§4.9, below), short-lived and revocable at the gateway.
// - §4.13 TLS-terminating proxies: the gateway's HTTP_TRUSTED_PROXIES, tested at the edge
//   (services/gateway/src/http/edge-hardening.int-spec.ts).
// - §4.6, §4.3.2 (resource servers and clients): the gateway's side is in test-e2e.

let bed: OAuthTestBed;
const challenge = async () => ({
  code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
  code_challenge_method: 'S256',
});

beforeAll(async () => {
  bed = await startOAuthTestBed('identity_rfc9700');
}, 60_000);

afterAll(async () => {
  await bed?.stop();
});

/** A token request as raw form fields, to send what no well-behaved client library would. */
async function tokenRequest(fields: Record<string, string>, basic?: { id: string; secret: string }) {
  const res = await fetch(bed.as.token_endpoint ?? '', {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(basic ? { authorization: `Basic ${Buffer.from(`${basic.id}:${basic.secret}`).toString('base64')}` } : {}),
    },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, body: (await res.json()) as { error?: string; access_token?: string } };
}

/** The code grant of one authorization, as raw fields (a client's verifier unless overridden). */
async function codeFields(client: oauth.Client) {
  const { back, verifier } = await bed.authorize(client);
  return {
    grant_type: 'authorization_code',
    code: back.searchParams.get('code') ?? '',
    redirect_uri: bed.callback,
    code_verifier: verifier,
    resource: bed.resource,
  };
}

describe('§4.1 insufficient redirect URI validation: exact matching only', () => {
  const variants = (callback: string) => {
    const url = new URL(callback);
    return [
      ['a trailing slash', `${callback}/`],
      ['another path case', callback.replace('/cb', '/CB')],
      ['an added query', `${callback}?next=https://attacker.example`],
      ['a path traversal', `${callback}/../cb`],
      ['userinfo', `${url.protocol}//attacker.example@${url.host}${url.pathname}`],
      ['another port', `${url.protocol}//${url.hostname}:1${url.pathname}`],
      ['another host', `https://attacker.example${url.pathname}`],
      ['a fragment', `${callback}#x`],
    ] as const;
  };

  it('refuses every variant of the registered URI with an error page, never redirecting there', async () => {
    for (const [what, redirectUri] of variants(bed.callback)) {
      const before = await bed.payloadCount();
      const res = await new Browser(bed).get(
        bed.authorizationUrl(bed.publicClient, { redirect_uri: redirectUri, state: 's', ...(await challenge()) }),
      );
      expect([what, res.status, res.headers.get('location')]).toEqual([what, 400, null]);
      expect([what, await res.text()]).toEqual([
        what,
        expect.stringMatching(/<code>invalid_(redirect_uri|request)<\/code>/),
      ]);
      expect([what, await bed.payloadCount()]).toEqual([what, before]);
    }
  });

  it('refuses a code presented with another redirect URI than it was issued for', async () => {
    const fields = await codeFields(bed.publicClient);
    const answer = await tokenRequest({
      ...fields,
      redirect_uri: `${bed.base}/elsewhere`,
      client_id: bed.publicClient.client_id,
    });
    expect(answer).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
  });
});

describe('§4.11 open redirection: errors go only to a registered URI of a known client', () => {
  it('shows an unknown client an error page instead of redirecting to the URI it names', async () => {
    const res = await new Browser(bed).get(
      bed.authorizationUrl(
        { client_id: 'cg_app_unknown' },
        { redirect_uri: 'https://attacker.example/cb', ...(await challenge()) },
      ),
    );
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('<code>invalid_client</code>');
  });

  it('sends a known client its error at its registered URI, with state and iss', async () => {
    const before = await bed.payloadCount();
    const res = await new Browser(bed).get(
      bed.authorizationUrl(bed.publicClient, {
        resource: 'https://attacker.example/api',
        state: 'target-1',
        ...(await challenge()),
      }),
    );
    expect(res.status).toBe(303);
    const back = new URL(res.headers.get('location') ?? '');
    expect(back.origin + back.pathname).toBe(bed.callback);
    expect(back.searchParams.get('error')).toBe('invalid_target');
    expect(back.searchParams.get('state')).toBe('target-1');
    expect(back.searchParams.get('iss')).toBe(`${bed.base}/oauth`);
    expect(await bed.payloadCount()).toBe(before);
  });
});

describe('§4.4 mix-up: the authorization response names its issuer (RFC 9207)', () => {
  it('advertises iss in responses and sends it with every code', async () => {
    expect(bed.as.authorization_response_iss_parameter_supported).toBe(true);
    const { back, state } = await bed.authorize(bed.publicClient);
    expect(back.searchParams.get('iss')).toBe(bed.as.issuer);
    // A client checking it (oauth4webapi does) refuses a response claiming another issuer.
    const forged = new URL(back);
    forged.searchParams.set('iss', 'https://attacker.example/oauth');
    expect(() => oauth.validateAuthResponse(bed.as, bed.publicClient, forged, state)).toThrow();
  });
});

describe('§4.5 authorization code injection and replay', () => {
  it('refuses a code redeemed by another client than the one it was issued to', async () => {
    const fields = await codeFields(bed.confidential.client);
    const answer = await tokenRequest({ ...fields, client_id: bed.publicClient.client_id });
    expect(answer).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
  });

  it('refuses a code with a verifier of another authorization (PKCE binds the code to its session)', async () => {
    const fields = await codeFields(bed.publicClient);
    const answer = await tokenRequest({
      ...fields,
      code_verifier: oauth.generateRandomCodeVerifier(),
      client_id: bed.publicClient.client_id,
    });
    expect(answer).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
  });

  it('refuses a code used twice, and revokes what its first use issued', async () => {
    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const tokens = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    await expect(bed.exchange(bed.publicClient, oauth.None(), back, verifier, state)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const after = await oauth.refreshTokenGrantRequest(
      bed.as,
      bed.publicClient,
      oauth.None(),
      tokens.refresh_token ?? '',
      insecure,
    );
    await expect(oauth.processRefreshTokenResponse(bed.as, bed.publicClient, after)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // The JWT access token it issued ends at the gateway with its grant (token_revoked on CONTROL;
    // oauth-server.int-spec.ts and test-e2e/identity/oauth-records.e2e-spec.ts).
  });
});

describe('§4.7 CSRF and §4.8 PKCE downgrade: PKCE S256 is required of every client', () => {
  it.each([
    ['without PKCE', {}],
    ['with the plain method', { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }],
  ])('refuses an authorization request %s at the redirect URI, storing nothing', async (_what, pkce) => {
    for (const client of [bed.publicClient, bed.confidential.client]) {
      const before = await bed.payloadCount();
      const res = await new Browser(bed).get(bed.authorizationUrl(client, { state: 'pkce-1', ...pkce }));
      expect(res.status).toBe(303);
      const back = new URL(res.headers.get('location') ?? '');
      expect(back.origin + back.pathname).toBe(bed.callback);
      expect(back.searchParams.get('error')).toBe('invalid_request');
      expect(back.searchParams.get('iss')).toBe(`${bed.base}/oauth`);
      expect(await bed.payloadCount()).toBe(before);
    }
  });

  it('refuses a code redeemed without its verifier', async () => {
    const { code_verifier: _dropped, ...fields } = await codeFields(bed.publicClient);
    const answer = await tokenRequest({ ...fields, client_id: bed.publicClient.client_id });
    expect(answer.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(answer.body.error);
    expect(answer.body.access_token).toBeUndefined();
  });
});

describe('§4.9 access token privilege restriction: audience-restricted to the gateway', () => {
  it('issues tokens for the gateway resource only, and refuses to mint one for another', async () => {
    const fields = await codeFields(bed.publicClient);
    const elsewhere = await tokenRequest({
      ...fields,
      resource: 'https://attacker.example/api',
      client_id: bed.publicClient.client_id,
    });
    expect(elsewhere.status).toBe(400);
    expect(['invalid_target', 'invalid_grant']).toContain(elsewhere.body.error);

    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const tokens = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, insecure);
    expect(claims.aud).toEqual(bed.resource);
    expect(claims.client_id).toBe(bed.publicClient.client_id);
  });
});

describe('§4.12 307 redirects: the consent form post is answered 303', () => {
  it('never re-posts the person’s form (and its fields) to the client', async () => {
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', bed.sessionToken);
    const page = await browser.follow(
      bed.authorizationUrl(bed.publicClient, { state: 's-303', ...(await challenge()) }),
    );
    const action = /<form method="post" action="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    const posted = await browser.get(action, {
      method: 'POST',
      body: 'decision=allow',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(bed.base).origin },
    });
    expect(posted.status).toBe(303);
    let res = posted;
    for (let i = 0; i < 5 && res.status >= 300 && res.status < 400; i += 1) {
      const next = new URL(res.headers.get('location') ?? '', bed.base);
      if (next.origin + next.pathname === bed.callback) break;
      res = await browser.get(next.href);
    }
    expect([302, 303]).toContain(res.status);
  });
});

describe('§4.14 refresh token protection: bound to the client, rotated, reuse revokes the family', () => {
  it("refuses another client's refresh token", async () => {
    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const tokens = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    const answer = await tokenRequest(
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' },
      { id: bed.confidential.client.client_id, secret: bed.confidential.secret },
    );
    expect(answer).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
  });

  it('refuses a rotated-out refresh token and then the one that replaced it too', async () => {
    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const first = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    const refresh = (token: string) =>
      tokenRequest({ grant_type: 'refresh_token', refresh_token: token, client_id: bed.publicClient.client_id });
    const rotated = await refresh(first.refresh_token ?? '');
    expect(rotated.status).toBe(200);
    const second = (rotated.body as { refresh_token?: string }).refresh_token ?? '';
    expect(second).not.toBe(first.refresh_token);
    // The stolen old token is replayed: refused, and the legitimate holder's new one dies with it.
    expect(await refresh(first.refresh_token ?? '')).toEqual({
      status: 400,
      body: expect.objectContaining({ error: 'invalid_grant' }),
    });
    expect(await refresh(second)).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
  });
});

describe('§4.15 client impersonating a resource owner', () => {
  it("names the application, never a person, as a client-credentials token's subject", async () => {
    const answer = await tokenRequest(
      { grant_type: 'client_credentials', resource: bed.resource, scope: 'github:read:repos' },
      { id: bed.confidential.client.client_id, secret: bed.confidential.secret },
    );
    expect(answer.status).toBe(200);
    const claims = await oauth.validateJwtAccessToken(
      bed.as,
      bed.bearer(answer.body.access_token ?? ''),
      bed.resource,
      insecure,
    );
    // Client ids are assigned by the server (cg_app_...), never chosen: none can equal a person's id.
    expect(claims.sub).toBe(bed.confidential.client.client_id);
    expect(claims.sub).not.toBe(bed.userId);
    expect(claims.sub).toMatch(/^cg_app_/);
  });
});

describe('§4.16 clickjacking: the consent page cannot be framed', () => {
  it('sends frame-ancestors none and X-Frame-Options DENY with the consent page', async () => {
    const browser = new Browser(bed);
    browser.cookies.set('__Host-cg_session', bed.sessionToken);
    const page = await browser.follow(
      bed.authorizationUrl(bed.publicClient, { state: 's-frame', ...(await challenge()) }),
    );
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
  });
});

describe('§2.1.2 and §2.4: no implicit grant, no resource owner password grant', () => {
  it.each(['token', 'id_token token', 'code token'])(
    'refuses response_type=%s, with no token anywhere',
    async (responseType) => {
      const res = await new Browser(bed).get(
        bed.authorizationUrl(bed.publicClient, {
          response_type: responseType,
          state: 's-implicit',
          ...(await challenge()),
        }),
      );
      const location = res.headers.get('location') ?? '';
      const back = new URL(location);
      const error = new URLSearchParams(back.hash.slice(1)).get('error') ?? back.searchParams.get('error');
      expect(error).toBe('unsupported_response_type');
      expect(location).not.toContain('access_token');
    },
  );

  it('refuses grant_type=password', async () => {
    const answer = await tokenRequest(
      { grant_type: 'password', username: 'ada', password: 'secret', scope: 'github:read:repos' },
      { id: bed.confidential.client.client_id, secret: bed.confidential.secret },
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('unsupported_grant_type');
  });
});
