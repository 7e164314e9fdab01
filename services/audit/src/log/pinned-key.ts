import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

import { AppError } from '@context-gateway/errors';
import { ed25519PublicKeyFromRaw, parseVerifierKey } from '@context-gateway/merkle-log';

const NEEDS_NAME = 'needs a name: give it as a verifier key (<name>+<key id>+<base64>)';

/** A public key an auditor pinned, and the signature-line name it signs under. */
export interface PinnedKey {
  publicKey: KeyObject;
  name: string;
}

/**
 * Reads a pinned Ed25519 public key as an auditor would hand it over: a C2SP verifier key
 * (`<name>+<key id>+<base64>`, what the service logs and `GET /v1/audit/checkpoint`
 * describes), raw 32 bytes in base64, or an SPKI PEM — inline or in a file. `type` is the
 * verifier-key type expected (0x01 a log key, 0x04 a witness key); `defaultName` names a
 * key given without one. A private key is refused: deriving the public key from the key
 * that signs is exactly what pinning is meant to avoid.
 */
export function parsePinnedKey(input: string, options: { type: number; defaultName?: string }): PinnedKey {
  const text = fileContents(input) ?? input;
  const value = text.trim();
  const bad = (why: string): never => {
    throw new AppError('validation_failed', `The pinned public key ${why}`);
  };
  if (value.includes('PRIVATE KEY')) bad('is a private key; pin the public key instead');
  if (value.startsWith('-----BEGIN')) {
    let key: KeyObject;
    try {
      key = createPublicKey(value);
    } catch {
      return bad('is not a PEM public key');
    }
    if (key.asymmetricKeyType !== 'ed25519') bad('is not an Ed25519 key');
    return { publicKey: key, name: options.defaultName ?? bad(NEEDS_NAME) };
  }
  // Base64 of 32 raw bytes is exactly 44 characters and may itself contain '+': decide that
  // first. A verifier key (`<name>+<8 hex>+<base64 of 33 bytes>`) is always longer.
  const isRawBase64 = value.length === 44 && /^[A-Za-z0-9+/]{43}=$/.test(value);
  if (!isRawBase64 && value.includes('+') && /^[\x21-\x7e]+$/.test(value) && value.split('+').length >= 3) {
    let parsed: ReturnType<typeof parseVerifierKey>;
    try {
      parsed = parseVerifierKey(value);
    } catch (error) {
      return bad(`is not a valid verifier key: ${(error as Error).message}`);
    }
    if (parsed.type !== options.type) bad(`is a verifier key of type 0x0${parsed.type}, expected 0x0${options.type}`);
    return { publicKey: parsed.publicKey, name: parsed.name };
  }
  const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : Buffer.alloc(0);
  if (raw.length !== 32) bad('is neither a verifier key, base64 of 32 bytes, nor a PEM public key (or such a file)');
  return { publicKey: ed25519PublicKeyFromRaw(raw), name: options.defaultName ?? bad(NEEDS_NAME) };
}

function fileContents(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return readFileSync(path, 'utf8');
}
