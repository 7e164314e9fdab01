import { createHmac, randomBytes } from 'node:crypto';

/** Standard Webhooks secrets are `whsec_` + base64 of the key bytes (24 to 64 of them). */
const SECRET_PREFIX = 'whsec_';

/** 32 random bytes: the key a new secret stands for. */
export function newSecretKey(): Buffer {
  return randomBytes(32);
}

export function formatSecret(key: Uint8Array): string {
  return `${SECRET_PREFIX}${Buffer.from(key).toString('base64')}`;
}

/**
 * The Standard Webhooks signature (https://www.standardwebhooks.com): `v1,` + base64 of
 * HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>` with the secret's key bytes.
 */
export function signature(key: Uint8Array, id: string, timestampSeconds: number, body: Uint8Array): string {
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest();
  return `v1,${mac.toString('base64')}`;
}
