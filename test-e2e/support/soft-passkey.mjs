// @ts-check
// A passkey authenticator in software, for tests and scripts that need a signed-in person
// without a browser: it answers the gateway's WebAuthn creation options the way a platform
// authenticator does (ES256 key, "none" attestation, user present and verified), over the
// gateway's public HTTP routes. The gateway and identity verify it with the same checks as
// a browser's (origin, RP ID, challenge, user verification); browser tests keep using
// Chromium's virtual authenticator (support/browser.ts).
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

const SESSION_COOKIE = '__Host-cg_session';
const CEREMONY_COOKIE = '__Host-cg_ceremony';

/**
 * @typedef {{ userId: string, sessionToken: string }} SignedInPerson
 *   A person signed in at the gateway, and their session token (the `__Host-cg_session` cookie).
 */

/**
 * Creates a new account with a software passkey and signs it in.
 * @param {string} gatewayUrl the gateway's public URL (its origin is the WebAuthn origin; RP ID its host)
 * @param {string} [displayName]
 * @returns {Promise<SignedInPerson>}
 */
export async function signUpWithSoftPasskey(gatewayUrl, displayName = 'Test person') {
  const origin = new URL(gatewayUrl).origin;
  const started = await fetch(`${origin}/v1/auth/passkeys/registration/options`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin },
    body: JSON.stringify({ displayName }),
  });
  if (!started.ok) throw new Error(`registration options: HTTP ${started.status} ${await started.text()}`);
  const options = /** @type {{ challenge: string, rp: { id: string } }} */ (await started.json());
  const ceremony = cookie(started, CEREMONY_COOKIE);

  const finished = await fetch(`${origin}/v1/auth/passkeys/registration/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin, cookie: `${CEREMONY_COOKIE}=${ceremony}` },
    body: JSON.stringify({ response: registrationResponse(options, origin) }),
  });
  if (!finished.ok) throw new Error(`registration verify: HTTP ${finished.status} ${await finished.text()}`);
  const { userId } = /** @type {{ userId: string }} */ (await finished.json());
  return { userId, sessionToken: cookie(finished, SESSION_COOKIE) };
}

/**
 * RegistrationResponseJSON for these options, from a fresh P-256 key.
 * @param {{ challenge: string, rp: { id: string } }} options
 * @param {string} origin
 */
function registrationResponse(options, origin) {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const credentialId = randomBytes(32);
  // COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
  const coseKey = cbor(
    new Map(
      /** @type {[number, number | Buffer][]} */ ([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x ?? '', 'base64url')],
        [-3, Buffer.from(jwk.y ?? '', 'base64url')],
      ]),
    ),
  );
  const credentialIdLength = Buffer.alloc(2);
  credentialIdLength.writeUInt16BE(credentialId.length);
  const authData = Buffer.concat([
    createHash('sha256').update(options.rp.id).digest(),
    // Flags: user present (0x01), user verified (0x04), attested credential data (0x40).
    Buffer.from([0x45]),
    Buffer.alloc(4), // signature counter
    Buffer.alloc(16), // AAGUID: none
    credentialIdLength,
    credentialId,
    coseKey,
  ]);
  const clientData = { type: 'webauthn.create', challenge: options.challenge, origin, crossOrigin: false };
  const attestationObject = cbor(
    new Map(
      /** @type {[string, string | Map<never, never> | Buffer][]} */ ([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    ),
  );
  return {
    id: credentialId.toString('base64url'),
    rawId: credentialId.toString('base64url'),
    type: 'public-key',
    response: {
      clientDataJSON: Buffer.from(JSON.stringify(clientData)).toString('base64url'),
      attestationObject: attestationObject.toString('base64url'),
      transports: ['internal'],
    },
    clientExtensionResults: {},
    authenticatorAttachment: 'platform',
  };
}

/**
 * The CBOR (RFC 8949) subset WebAuthn needs: maps, text, byte strings, small integers.
 * @param {unknown} value
 * @returns {Buffer}
 */
function cbor(value) {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  if (value instanceof Map)
    return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
  throw new Error(`cbor: unsupported value ${typeof value}`);
}

/**
 * @param {number} major
 * @param {number} n
 */
function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  const b = Buffer.alloc(3);
  b[0] = (major << 5) | 25;
  b.writeUInt16BE(n, 1);
  return b;
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
