import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto';

import { AppError } from '@context-gateway/errors';

import { encodeContext, type EncryptionContext } from './encryption-context.js';

const ALGORITHM = 'aes-256-gcm';
/** First byte of every record ciphertext; bump it when the layout or algorithm changes. */
const CIPHERTEXT_FORMAT_V1 = 0x01;
export const DATA_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;
const FORMAT_AAD = Buffer.from([CIPHERTEXT_FORMAT_V1]);
/** HKDF info of the digest subkey: never the encryption key itself in two algorithms. */
const DIGEST_KEY_INFO = Buffer.from('context-gateway data-key digest v1');

/**
 * Random nonces drawn from the CSPRNG a few hundred at a time: one call per record was a
 * tenth of a shard's CPU while a sync wrote (the call, not the bytes, is what costs). Each
 * nonce is handed out once, then the pool is refilled; the bytes are the same CSPRNG's.
 */
const NONCE_POOL = Buffer.alloc(NONCE_BYTES * 512);
let noncePoolOffset = NONCE_POOL.length;

function takeNonce(into: Buffer, at: number): void {
  if (noncePoolOffset + NONCE_BYTES > NONCE_POOL.length) {
    randomFillSync(NONCE_POOL);
    noncePoolOffset = 0;
  }
  NONCE_POOL.copy(into, at, noncePoolOffset, noncePoolOffset + NONCE_BYTES);
  // Never handed out twice: the used bytes are overwritten at once.
  NONCE_POOL.fill(0, noncePoolOffset, noncePoolOffset + NONCE_BYTES);
  noncePoolOffset += NONCE_BYTES;
}

/** Associated data: a context (encoded canonically here) or bytes the caller encoded once. */
export type AssociatedData = EncryptionContext | Uint8Array;

function toAad(aad: AssociatedData): Uint8Array {
  return aad instanceof Uint8Array ? aad : encodeContext(aad);
}

/**
 * A plaintext AES-256 data key (one per connection). This is the hot path: each call is
 * one AES-GCM operation and nothing else — no I/O, no key derivation.
 *
 * Ciphertext layout: `0x01 | 12-byte random nonce | ciphertext | 16-byte tag`; the format
 * byte is authenticated too, so it cannot be swapped to steer a future parser.
 * Random 96-bit nonces are safe up to ~2^32 encryptions per key (NIST SP 800-38D);
 * a connection's records stay far below that, and re-keying is a re-encrypt under a new key.
 *
 * The key stays a Buffer, not a KeyObject, so destroy() can really zero it (a KeyObject
 * keeps a copy we cannot reach); measured cost here is ~5% on 1 KB records.
 */
export class DataKey {
  #key: Buffer | undefined;
  #digestKey: Buffer | undefined;

  /** Takes ownership of `key`: the caller must not reuse or zero that buffer. */
  constructor(key: Buffer) {
    if (key.length !== DATA_KEY_BYTES) {
      throw new AppError('internal', `data key must be ${DATA_KEY_BYTES} bytes`);
    }
    this.#key = key;
  }

  static generate(): DataKey {
    return new DataKey(randomBytes(DATA_KEY_BYTES));
  }

  get destroyed(): boolean {
    return this.#key === undefined;
  }

  encrypt(plaintext: Uint8Array, aad: AssociatedData): Buffer {
    const key = this.#live();
    const out = Buffer.allocUnsafe(HEADER_BYTES + plaintext.length + TAG_BYTES);
    out[0] = CIPHERTEXT_FORMAT_V1;
    takeNonce(out, 1);
    const nonce = out.subarray(1, HEADER_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(FORMAT_AAD);
    cipher.setAAD(toAad(aad));
    let offset = HEADER_BYTES + cipher.update(plaintext).copy(out, HEADER_BYTES);
    offset += cipher.final().copy(out, offset);
    cipher.getAuthTag().copy(out, offset);
    return out;
  }

  /** Any tampering, a wrong key or a wrong owner's AAD → AppError('decryption_failed'). */
  decrypt(ciphertext: Uint8Array, aad: AssociatedData): Buffer {
    const key = this.#live();
    if (ciphertext.length < HEADER_BYTES + TAG_BYTES || ciphertext[0] !== CIPHERTEXT_FORMAT_V1) {
      throw new AppError('decryption_failed');
    }
    const end = ciphertext.length - TAG_BYTES;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, ciphertext.subarray(1, HEADER_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAuthTag(ciphertext.subarray(end));
      decipher.setAAD(FORMAT_AAD);
      decipher.setAAD(toAad(aad));
      const head = decipher.update(ciphertext.subarray(HEADER_BYTES, end));
      const tail = decipher.final();
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch (cause) {
      // OpenSSL's message says nothing useful and must not reach callers.
      throw new AppError('decryption_failed', undefined, [], { cause });
    }
  }

  /**
   * A keyed digest of `data` bound to `context` (HMAC-SHA-256 under a subkey derived from
   * this key with HKDF-SHA-256, derived once per key): equal inputs give equal digests, so a
   * stored body can be compared without decrypting it, and without the key nothing can be
   * learned or confirmed from a digest. The context is length-prefixed, so no (context,
   * data) pair can collide with another.
   */
  digest(data: Uint8Array, context: AssociatedData): Buffer {
    this.#live();
    this.#digestKey ??= Buffer.from(hkdfSync('sha256', this.#live(), Buffer.alloc(0), DIGEST_KEY_INFO, 32));
    const aad = toAad(context);
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(aad.length);
    return createHmac('sha256', this.#digestKey).update(length).update(aad).update(data).digest();
  }

  /** Whether `expected` is `digest(data, context)`, compared in constant time (a missing one never matches). */
  digestMatches(data: Uint8Array, context: AssociatedData, expected: Uint8Array | null): boolean {
    if (!expected) return false;
    const actual = this.digest(data, context);
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }

  /** Zeroes the key bytes; every later encrypt/decrypt/digest throws AppError('key_destroyed'). */
  destroy(): void {
    this.#key?.fill(0);
    this.#key = undefined;
    this.#digestKey?.fill(0);
    this.#digestKey = undefined;
  }

  /** Keeps key bytes out of logs and JSON dumps. */
  toJSON(): string {
    return '[DataKey]';
  }

  #live(): Buffer {
    if (this.#key === undefined) throw new AppError('key_destroyed');
    return this.#key;
  }
}
