import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

import { AppError } from '@context-gateway/errors';

/**
 * The PKCE code_verifier is kept server-side, sealed under a key derived from the OAuth
 * state: the state is stored only as a hash and otherwise lives in the browser's cookie and
 * the source's redirect, so a database reader alone cannot turn a stolen code into tokens.
 */
function keyFor(state: string): Buffer {
  return createHash('sha256').update('cg-pkce-verifier-v1\0').update(state).digest();
}

export function sealVerifier(verifier: string, state: string, sessionId: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(state), iv);
  cipher.setAAD(Buffer.from(sessionId));
  const body = Buffer.concat([cipher.update(verifier, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

export function openVerifier(sealed: Uint8Array, state: string, sessionId: string): string {
  const buf = Buffer.from(sealed);
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFor(state), buf.subarray(0, 12));
    decipher.setAAD(Buffer.from(sessionId));
    decipher.setAuthTag(buf.subarray(12, 28));
    return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]).toString('utf8');
  } catch (cause) {
    throw new AppError('oauth_state_invalid', 'The state does not open this session', [], { cause });
  }
}

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
