// @ts-check
// A signed-in person with a passkey in software, for tests and scripts without a browser: the
// authenticator (@context-gateway/crypto/testing SoftAuthenticator) answers the gateway's
// WebAuthn options over its public HTTP routes, and signs what a person signs with their
// passkey (a consent, an endorsement) as a platform authenticator would. The gateway, identity
// and the Personal Server verify it with the same checks as a browser's (origin, RP ID,
// challenge, user verification); browser tests use Chromium's virtual authenticator
// (support/browser.ts).
import { SoftAuthenticator } from '@context-gateway/crypto/testing';

const SESSION_COOKIE = '__Host-cg_session';
const CEREMONY_COOKIE = '__Host-cg_ceremony';

/**
 * @typedef {{ userId: string, sessionToken: string, sign: (challenge: string) => Promise<string> }} SignedInPerson
 *   A person signed in at the gateway, their session token (the `__Host-cg_session` cookie),
 *   and how they sign a WebAuthn challenge with their passkey (AuthenticationResponseJSON).
 */

/**
 * Creates a new account with a software passkey and signs it in.
 * @param {string} gatewayUrl the gateway's public URL (its origin is the WebAuthn origin; RP ID its host)
 * @param {string} [displayName]
 * @returns {Promise<SignedInPerson>}
 */
export async function signUpWithSoftPasskey(gatewayUrl, displayName = 'Test person') {
  const passkey = new SoftAuthenticator();
  const { userId, sessionToken } = await register(gatewayUrl, passkey, { displayName });
  return { userId, sessionToken, sign: softSigner(gatewayUrl, passkey) };
}

/**
 * Adds a software passkey to a signed-in person's account (one who signed in with their
 * organization's SSO and has none yet, say); the session must be fresh. The ceremony opens a
 * new session and ends the one given: use the returned person's `sessionToken` from then on.
 * @param {string} gatewayUrl
 * @param {{ userId: string, sessionToken: string }} person
 * @returns {Promise<SignedInPerson>}
 */
export async function addSoftPasskey(gatewayUrl, person) {
  const passkey = new SoftAuthenticator();
  const { userId, sessionToken } = await register(gatewayUrl, passkey, { sessionToken: person.sessionToken });
  return { userId, sessionToken, sign: softSigner(gatewayUrl, passkey) };
}

/**
 * @param {string} gatewayUrl
 * @param {SoftAuthenticator} passkey
 */
function softSigner(gatewayUrl, passkey) {
  const origin = new URL(gatewayUrl).origin;
  return async (/** @type {string} */ challenge) => JSON.stringify(passkey.assert(challenge, origin));
}

/**
 * The registration ceremony over the gateway's routes: a new account, or (with a session)
 * one more passkey for it.
 * @param {string} gatewayUrl
 * @param {SoftAuthenticator} passkey
 * @param {{ displayName?: string, sessionToken?: string }} as
 */
async function register(gatewayUrl, passkey, as) {
  const origin = new URL(gatewayUrl).origin;
  /** @type {Record<string, string>} */
  const session = as.sessionToken ? { cookie: `${SESSION_COOKIE}=${as.sessionToken}` } : {};
  const started = await fetch(`${origin}/v1/auth/passkeys/registration/options`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin, ...session },
    body: JSON.stringify(as.displayName ? { displayName: as.displayName } : {}),
  });
  if (!started.ok) throw new Error(`registration options: HTTP ${started.status} ${await started.text()}`);
  const options = /** @type {{ challenge: string, rp: { id: string } }} */ (await started.json());
  const ceremony = cookie(started, CEREMONY_COOKIE);
  const finished = await fetch(`${origin}/v1/auth/passkeys/registration/verify`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      origin,
      cookie: [`${CEREMONY_COOKIE}=${ceremony}`, ...(session.cookie ? [session.cookie] : [])].join('; '),
    },
    body: JSON.stringify({ response: passkey.register(options, origin) }),
  });
  if (!finished.ok) throw new Error(`registration verify: HTTP ${finished.status} ${await finished.text()}`);
  const { userId } = /** @type {{ userId: string }} */ (await finished.json());
  // A ceremony opens a new session and ends the browser's previous one.
  return { userId, sessionToken: cookie(finished, SESSION_COOKIE) };
}

/**
 * A cookie's value from a response's Set-Cookie headers.
 * @param {Response} response
 * @param {string} name
 */
function cookie(response, name) {
  for (const line of response.headers.getSetCookie()) {
    const [pair = ''] = line.split(';');
    const at = pair.indexOf('=');
    if (pair.slice(0, at).trim() === name && at > 0) return pair.slice(at + 1).trim();
  }
  throw new Error(`the gateway set no ${name} cookie`);
}
