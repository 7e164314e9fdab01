import { createHash, randomBytes } from 'node:crypto';

import { completeAuthorization, type RunningSimulator } from '@context-gateway/source-simulators';

import type { AccessTokenSource } from '../connector.js';

const REDIRECT = 'http://127.0.0.1:9/callback';

/**
 * For connector tests: a real OAuth authorization-code + PKCE flow against a simulator and
 * a token source that refreshes at the simulator's token endpoint, as the broker does in
 * production. Counts refreshes so tests can see a 401 was answered by one.
 */
export async function simulatorTokens(
  sim: RunningSimulator,
  login: string,
  scope: string,
): Promise<AccessTokenSource & { refreshes: number }> {
  const client = await sim.control.registerClient({ redirect_uris: [REDIRECT], name: 'connector tests' });
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const authorizePath = sim.provider === 'github' ? '/login/oauth/authorize' : '/authorize';
  const tokenPath = sim.provider === 'github' ? '/login/oauth/access_token' : '/api/token';
  const url = new URL(authorizePath, sim.url);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT,
    scope,
    state: 's',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  const { redirect } = await completeAuthorization(url, { login });
  const code = redirect.searchParams.get('code');
  if (!code) throw new Error(`authorization failed: ${redirect.toString()}`);

  const tokenRequest = async (params: Record<string, string>) => {
    const res = await fetch(new URL(tokenPath, sim.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ client_id: client.client_id, client_secret: client.client_secret, ...params }),
    });
    const body = (await res.json()) as { access_token?: string; refresh_token?: string; error?: string };
    if (!body.access_token) throw new Error(`token request failed: ${body.error ?? res.status}`);
    return body as { access_token: string; refresh_token?: string };
  };
  let tokens = await tokenRequest({
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT,
    code_verifier: verifier,
  });
  let inFlight: Promise<string> | undefined;
  const source = {
    refreshes: 0,
    current: () => Promise.resolve(tokens.access_token),
    refresh: async (rejected: string) => {
      if (rejected !== tokens.access_token) return tokens.access_token;
      const refreshToken = tokens.refresh_token;
      if (refreshToken === undefined) throw new Error('the simulator issued no refresh token');
      inFlight ??= tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken })
        .then((t) => {
          tokens = t;
          source.refreshes++;
          return t.access_token;
        })
        .finally(() => (inFlight = undefined));
      return inFlight;
    },
  };
  return source;
}
