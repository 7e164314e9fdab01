import { TestClock } from '@context-gateway/clock/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import { completeAuthorization } from './complete-authorization.js';
import { type RunningSimulator, startSimulator } from './server.js';

/**
 * The authorization-code + PKCE flow against each simulated source, driven by the same
 * OAuth client library the connection broker uses (openid-client 6), over real HTTP.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const CLIENT = { clientId: 'test-client', clientSecret: 'test-secret-123', redirectUris: [REDIRECT], name: 'Test App' };

/** What a connection broker does: a configured client for one source. */
async function clientFor(sim: RunningSimulator): Promise<oidc.Configuration> {
  let config: oidc.Configuration;
  if (sim.provider === 'demo') {
    config = await oidc.discovery(
      new URL(sim.url),
      CLIENT.clientId,
      undefined,
      oidc.ClientSecretBasic(CLIENT.clientSecret),
      {
        execute: [oidc.allowInsecureRequests],
        algorithm: 'oauth2',
      },
    );
  } else if (sim.provider === 'spotify') {
    // Spotify publishes no OAuth metadata either; it authenticates clients with Basic.
    config = new oidc.Configuration(
      { issuer: sim.url, authorization_endpoint: `${sim.url}/authorize`, token_endpoint: `${sim.url}/api/token` },
      CLIENT.clientId,
      undefined,
      oidc.ClientSecretBasic(CLIENT.clientSecret),
    );
    oidc.allowInsecureRequests(config);
  } else {
    // GitHub publishes no metadata: endpoints are configured explicitly.
    config = new oidc.Configuration(
      {
        issuer: sim.url,
        authorization_endpoint: `${sim.url}/login/oauth/authorize`,
        token_endpoint: `${sim.url}/login/oauth/access_token`,
      },
      CLIENT.clientId,
      undefined,
      oidc.ClientSecretPost(CLIENT.clientSecret),
    );
    oidc.allowInsecureRequests(config);
    // GitHub answers token errors with 200 + {error}; turn them into the 400 that
    // OAuth clients understand, as a broker talking to GitHub must.
    config[oidc.customFetch] = async (url, options) => {
      const res = await fetch(url, options);
      if (res.status !== 200) return res;
      const body = (await res
        .clone()
        .json()
        .catch(() => undefined)) as { error?: string } | undefined;
      if (!body?.error) return res;
      return new Response(JSON.stringify(body), { status: 400, headers: { 'content-type': 'application/json' } });
    };
  }
  return config;
}

async function startFlow(config: oidc.Configuration, scope: string, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope,
    state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  return { url, verifier, state };
}

async function getJson(url: string, token: string) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const cases = [
  {
    provider: 'demo' as const,
    scope: 'profile notes.read',
    login: 'alice',
    profilePath: '/api/profile',
    loginField: 'username',
  },
  { provider: 'github' as const, scope: 'read:user repo', login: 'octocat', profilePath: '/user', loginField: 'login' },
  {
    provider: 'spotify' as const,
    scope: 'user-read-private user-read-email',
    login: 'wizzler',
    profilePath: '/v1/me',
    loginField: 'id',
  },
];

describe.each(cases)('$provider authorization server', ({ provider, scope, login, profilePath, loginField }) => {
  let sim: RunningSimulator;
  let config: oidc.Configuration;

  beforeAll(async () => {
    sim = await startSimulator({ provider, clients: [CLIENT] });
    config = await clientFor(sim);
  });
  afterAll(async () => {
    await sim.stop();
  });

  async function connect() {
    const flow = await startFlow(config, scope);
    const { redirect } = await completeAuthorization(flow.url, { login });
    const tokens = await oidc.authorizationCodeGrant(config, redirect, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
    });
    return { flow, redirect, tokens };
  }

  it('completes code + PKCE: the token reads the signed-in account, the state comes back', async () => {
    const { flow, redirect, tokens } = await connect();
    expect(redirect.searchParams.get('state')).toBe(flow.state);
    if (provider === 'demo') expect(redirect.searchParams.get('iss')).toBe(sim.url);
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.expires_in).toBeGreaterThan(0);
    const me = await getJson(`${sim.url}${profilePath}`, tokens.access_token);
    expect(me.status).toBe(200);
    expect(me.body[loginField]).toBe(login);
  });

  it('rotates refresh tokens; reusing an old one is invalid_grant and revokes the family', async () => {
    const { tokens } = await connect();
    const second = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(tokens.refresh_token);
    expect((await getJson(`${sim.url}${profilePath}`, second.access_token)).status).toBe(200);

    const reuse = await oidc.refreshTokenGrant(config, tokens.refresh_token!).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(oidc.ResponseBodyError);
    expect((reuse as oidc.ResponseBodyError).error).toBe(provider === 'github' ? 'bad_refresh_token' : 'invalid_grant');
    // The legitimate holder's newest tokens are gone too.
    expect((await getJson(`${sim.url}${profilePath}`, second.access_token)).status).toBe(401);
    const after = await oidc.refreshTokenGrant(config, second.refresh_token!).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(oidc.ResponseBodyError);
  });

  it('a replayed code is refused and the tokens issued from it are revoked', async () => {
    const { flow, redirect, tokens } = await connect();
    const replay = await oidc
      .authorizationCodeGrant(config, redirect, { pkceCodeVerifier: flow.verifier, expectedState: flow.state })
      .catch((e: unknown) => e);
    expect(replay).toBeInstanceOf(oidc.ResponseBodyError);
    expect((replay as oidc.ResponseBodyError).error).toBe(
      provider === 'github' ? 'bad_verification_code' : 'invalid_grant',
    );
    expect((await getJson(`${sim.url}${profilePath}`, tokens.access_token)).status).toBe(401);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toBeInstanceOf(oidc.ResponseBodyError);
  });

  it('refuses an authorization request without PKCE, and plain PKCE', async () => {
    const state = oidc.randomState();
    const noPkce = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope, state });
    const res = await fetch(noPkce, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const back = new URL(res.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('state')).toBe(state);
    expect(back.searchParams.get('code')).toBeNull();

    const plain = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope,
      state,
      code_challenge: oidc.randomPKCECodeVerifier(),
      code_challenge_method: 'plain',
    });
    const plainRes = await fetch(plain, { redirect: 'manual' });
    expect(new URL(plainRes.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses a redirect_uri that is not registered exactly, without redirecting to it', async () => {
    for (const wrong of [
      `${REDIRECT}/x`,
      `${REDIRECT}?a=1`,
      'http://127.0.0.1:9/callbacK',
      'http://evil.test/callback',
    ]) {
      const flow = await startFlow(config, scope, { redirect_uri: wrong });
      const res = await fetch(flow.url, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
  });

  it('a code redeemed with another redirect_uri yields no tokens', async () => {
    const flow = await startFlow(config, scope);
    const { redirect } = await completeAuthorization(flow.url, { login });
    // openid-client sends the callback URL it was given as redirect_uri.
    const elsewhere = new URL(redirect);
    elsewhere.pathname = '/elsewhere';
    const mismatch = await oidc
      .authorizationCodeGrant(config, elsewhere, { pkceCodeVerifier: flow.verifier, expectedState: flow.state })
      .catch((e: unknown) => e);
    expect(mismatch).toBeInstanceOf(oidc.ResponseBodyError);
    expect((mismatch as oidc.ResponseBodyError).error).toBe(
      provider === 'github' ? 'redirect_uri_mismatch' : 'invalid_grant',
    );
    await expect(
      oidc.authorizationCodeGrant(config, redirect, { pkceCodeVerifier: flow.verifier, expectedState: flow.state }),
    ).rejects.toBeInstanceOf(oidc.ResponseBodyError);
  });

  it('a code redeemed with a wrong verifier yields no tokens', async () => {
    const flow = await startFlow(config, scope);
    const { redirect } = await completeAuthorization(flow.url, { login });
    const wrongVerifier = await oidc
      .authorizationCodeGrant(config, redirect, {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
        expectedState: flow.state,
      })
      .catch((e: unknown) => e);
    expect(wrongVerifier).toBeInstanceOf(oidc.ResponseBodyError);
    // The failed attempt burnt the code: the right verifier is too late now.
    await expect(
      oidc.authorizationCodeGrant(config, redirect, { pkceCodeVerifier: flow.verifier, expectedState: flow.state }),
    ).rejects.toBeInstanceOf(oidc.ResponseBodyError);
  });

  it('deny on the consent page sends error=access_denied with the state', async () => {
    const flow = await startFlow(config, scope);
    const { redirect } = await completeAuthorization(flow.url, { login, decision: 'deny' });
    expect(redirect.searchParams.get('error')).toBe('access_denied');
    expect(redirect.searchParams.get('state')).toBe(flow.state);
    expect(redirect.searchParams.get('code')).toBeNull();
  });

  it('a signed-in browser goes straight to consent the second time', async () => {
    const first = await startFlow(config, scope);
    const { sessionCookie } = await completeAuthorization(first.url, { login });
    expect(sessionCookie).toMatch(new RegExp(`^sim_session_${provider}=`));
    const second = await startFlow(config, scope);
    const page = await fetch(second.url, { headers: { cookie: sessionCookie! } });
    const html = await page.text();
    expect(html).toContain('id="allow"');
    expect(html).not.toContain('name="password"');
    const { redirect } = await completeAuthorization(second.url, { login: 'ignored', sessionCookie: sessionCookie! });
    const tokens = await oidc.authorizationCodeGrant(config, redirect, {
      pkceCodeVerifier: second.verifier,
      expectedState: second.state,
    });
    expect((await getJson(`${sim.url}${profilePath}`, tokens.access_token)).body[loginField]).toBe(login);
  });

  it('a wrong password keeps the person on the login form', async () => {
    const flow = await startFlow(config, scope);
    await expect(completeAuthorization(flow.url, { login, password: 'nope' })).rejects.toThrow(
      /401.*Incorrect username or password/,
    );
  });

  it('an expired access token gets a 401 in the source shape; refresh brings access back', async () => {
    const { tokens } = await connect();
    await sim.control.expireTokens();
    const expired = await getJson(`${sim.url}${profilePath}`, tokens.access_token);
    expect(expired.status).toBe(401);
    if (provider === 'github')
      expect(expired.body).toEqual({
        message: 'Bad credentials',
        documentation_url: 'https://docs.github.com/rest',
        status: '401',
      });
    else if (provider === 'spotify')
      expect(expired.body).toEqual({ error: { status: 401, message: 'The access token expired' } });
    else expect(expired.body).toMatchObject({ error: 'invalid_token' });
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect((await getJson(`${sim.url}${profilePath}`, refreshed.access_token)).status).toBe(200);
  });

  // Spotify has no revocation endpoint (people remove apps on spotify.com).
  (provider === 'spotify' ? it.skip : it)('revocation at the source ends the grant', async () => {
    const { tokens } = await connect();
    if (provider === 'demo') {
      await oidc.tokenRevocation(config, tokens.refresh_token!);
    } else {
      const res = await fetch(`${sim.url}/applications/${CLIENT.clientId}/grant`, {
        method: 'DELETE',
        headers: {
          authorization: `Basic ${Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ access_token: tokens.access_token }),
      });
      expect(res.status).toBe(204);
    }
    expect((await getJson(`${sim.url}${profilePath}`, tokens.access_token)).status).toBe(401);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toBeInstanceOf(oidc.ResponseBodyError);
    const counters = await sim.control.counters();
    expect(counters.tokensRevoked).toBeGreaterThan(0);
  });
});

describe('configurable access-token lifetime', () => {
  it('a token issued with a 2-second lifetime stops working after it', async () => {
    // Starts at the real time: openid-client checks what the server says against its own clock.
    const clock = new TestClock(Date.now());
    const sim = await startSimulator({ provider: 'demo', clients: [CLIENT], accessTokenTtlSeconds: 2, clock });
    try {
      const config = await clientFor(sim);
      const flow = await startFlow(config, 'profile');
      const { redirect } = await completeAuthorization(flow.url, { login: 'alice' });
      const tokens = await oidc.authorizationCodeGrant(config, redirect, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
      });
      expect(tokens.expires_in).toBe(2);
      expect((await getJson(`${sim.url}/api/profile`, tokens.access_token)).status).toBe(200);
      clock.advance(2_100);
      const res = await getJson(`${sim.url}/api/profile`, tokens.access_token);
      expect(res.status).toBe(401);
      expect(res.body.error_description).toMatch(/expired/);
    } finally {
      await sim.stop();
    }
  });
});
