// @ts-check
// What the stack benchmarks need of people, without a browser: a person's OAuth access token
// from the authorization code flow (PKCE) driven over HTTP with their passkey session. (Their
// connections come from support/connect-account.mjs.)
import { createHash, randomBytes } from 'node:crypto';

const b64url = (/** @type {Buffer} */ bytes) => bytes.toString('base64url');

/**
 * A person's access token for a public client: authorization code + PKCE S256 against the
 * gateway's authorization server, the person already signed in (their session cookie), the
 * consent form answered as the browser would post it.
 * @param {string} gatewayUrl the gateway's public URL (also the token's resource)
 * @param {string} sessionToken the person's `__Host-cg_session`
 * @param {{ clientId: string, redirectUri: string, scope: string }} client
 * @returns {Promise<string>}
 */
export async function personAccessToken(gatewayUrl, sessionToken, client) {
  const origin = new URL(gatewayUrl).origin;
  const metadata = /** @type {{ authorization_endpoint: string, token_endpoint: string }} */ (
    await (await fetch(`${origin}/.well-known/oauth-authorization-server/oauth`)).json()
  );
  const verifier = b64url(randomBytes(32));
  const cookies = new Map([['__Host-cg_session', sessionToken]]);
  const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const remember = (/** @type {Response} */ res) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  };
  let url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    response_type: 'code',
    scope: client.scope,
    resource: origin,
    state: b64url(randomBytes(16)),
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  }).toString();
  /** @type {RequestInit} */
  let init = {};
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookieHeader() } });
    remember(res);
    const location = res.headers.get('location');
    if (location) {
      const next = new URL(location, url);
      if (next.href.startsWith(client.redirectUri)) {
        const code = next.searchParams.get('code');
        if (!code) throw new Error(`authorization refused: ${next.search}`);
        const token = await fetch(metadata.token_endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code,
            redirect_uri: client.redirectUri,
            client_id: client.clientId,
            code_verifier: verifier,
          }),
        });
        const body = /** @type {{ access_token: string }} */ (await token.json());
        if (!token.ok) throw new Error(`token request refused: ${JSON.stringify(body)}`);
        return body.access_token;
      }
      url = next;
      init = {};
      continue;
    }
    if (res.status === 200 && url.pathname.includes('/interaction/') && init.method !== 'POST') {
      // The consent page: Allow, posted from the gateway's own origin as its form is.
      await res.text();
      init = {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
        body: 'decision=allow',
      };
      continue;
    }
    throw new Error(`authorization stopped at ${url.pathname}: ${res.status} ${(await res.text()).slice(0, 200)}`);
  }
  throw new Error('authorization did not finish');
}
