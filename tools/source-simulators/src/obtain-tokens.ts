import { createHash, randomBytes } from 'node:crypto';

import { completeAuthorization } from './complete-authorization.js';
import type { RunningSimulator } from './server.js';
import type { ProviderName } from './simulator-context.js';

/** The OAuth sources' endpoints; ListenBrainz has none (a person pastes a user token). */
const AUTHORIZE: Partial<Record<ProviderName, string>> = {
  github: '/login/oauth/authorize',
  spotify: '/authorize',
  demo: '/oauth/authorize',
};
const TOKEN: Partial<Record<ProviderName, string>> = {
  github: '/login/oauth/access_token',
  spotify: '/api/token',
  demo: '/oauth/token',
};

export interface ObtainedTokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  scope: string;
  client_id: string;
  client_secret: string;
}

/**
 * A token set for `login`, obtained the honest way (a client registered through the
 * control API, code + PKCE through the login and consent pages, the token endpoint):
 * for tests of what happens after the connect flow (API shapes, sync, expiry).
 */
export async function obtainTokens(
  sim: RunningSimulator,
  login: string,
  scopes: string[],
  password = 'password',
): Promise<ObtainedTokens> {
  const authorizePath = AUTHORIZE[sim.provider];
  const tokenPath = TOKEN[sim.provider];
  if (!authorizePath || !tokenPath) throw new Error(`${sim.provider} has no OAuth: use its user tokens`);
  const redirectUri = 'http://127.0.0.1:9/callback';
  const client = await sim.control.registerClient({ redirect_uris: [redirectUri], name: 'obtainTokens' });
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(authorizePath, sim.url);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: scopes.join(' '),
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const { redirect } = await completeAuthorization(url, { login, password });
  const code = redirect.searchParams.get('code');
  if (!code)
    throw new Error(
      `authorization refused: ${redirect.searchParams.get('error')} ${redirect.searchParams.get('error_description')}`,
    );
  const res = await fetch(new URL(tokenPath, sim.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: client.client_id,
      client_secret: client.client_secret,
    }),
  });
  const body = (await res.json()) as Partial<ObtainedTokens> & { error?: string };
  if (!body.access_token) throw new Error(`token request failed: ${body.error ?? res.status}`);
  return { ...(body as ObtainedTokens), client_id: client.client_id, client_secret: client.client_secret };
}
