import { createHash, randomBytes } from 'node:crypto';

/**
 * A 256-bit random secret with a recognisable prefix (`cg_sk_`, `cg_ss_`, ...), base64url.
 * The prefix lets secret scanners and people tell what leaked.
 */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/**
 * SHA-256, hex. Enough for 256-bit random secrets: inverting it is as hard as guessing the
 * secret, so a slow password hash (argon2, bcrypt) would add latency and no protection.
 */
export function sha256(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A 256-bit secret's shape: prefix + 43 base64url characters. Checked before any lookup. */
export function hasSecretShape(value: string, prefix: string): boolean {
  return (
    value.length === prefix.length + 43 &&
    value.startsWith(prefix) &&
    /^[A-Za-z0-9_-]{43}$/.test(value.slice(prefix.length))
  );
}
