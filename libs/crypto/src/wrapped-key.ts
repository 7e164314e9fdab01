import { AppError } from '@context-gateway/errors';

/** First byte of an encoded WrappedKey; bump it if the layout changes. */
const WRAPPED_FORMAT_V1 = 0x01;
const PROVIDER_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_KEK_VERSION = 0xffff_ffff;

/**
 * A data key encrypted under a key-encryption key (KEK). Self-describing, so a stored
 * value says which provider and which KEK version can open it — rotation never has to
 * guess. Nothing in it is secret; it lives in a bytea/text column beside the data it
 * protects, and deleting that row is what crypto-shreds the data.
 *
 * Bytes: `0x01 | u8 idLen | providerId | u32 kekVersion | provider ciphertext`.
 * String: base64url of those bytes.
 */
export class WrappedKey {
  constructor(
    /** Which provider wrapped it (`local`, `vault-transit`, `aws-kms`, …). */
    readonly providerId: string,
    /** KEK version, ≥ 1; providers map it to their own key versions. */
    readonly kekVersion: number,
    /** Opaque to everyone but the provider. */
    readonly ciphertext: Uint8Array,
  ) {
    if (!PROVIDER_ID.test(providerId)) {
      throw new AppError('internal', `invalid key provider id "${providerId}"`);
    }
    if (!Number.isInteger(kekVersion) || kekVersion < 1 || kekVersion > MAX_KEK_VERSION) {
      throw new AppError('internal', `invalid KEK version ${kekVersion}`);
    }
  }

  encode(): Buffer {
    const id = Buffer.from(this.providerId, 'ascii');
    const out = Buffer.allocUnsafe(2 + id.length + 4 + this.ciphertext.length);
    out[0] = WRAPPED_FORMAT_V1;
    out[1] = id.length;
    id.copy(out, 2);
    out.writeUInt32BE(this.kekVersion, 2 + id.length);
    out.set(this.ciphertext, 2 + id.length + 4);
    return out;
  }

  toString(): string {
    return this.encode().toString('base64url');
  }

  toJSON(): string {
    return this.toString();
  }

  /**
   * Parses what encode()/toString() produced. A corrupt value is reported as
   * decryption_failed: to the caller it is a ciphertext that cannot be opened.
   */
  static decode(encoded: Uint8Array | string): WrappedKey {
    const bytes =
      typeof encoded === 'string'
        ? Buffer.from(encoded, 'base64url')
        : Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const idLength = bytes[1] ?? 0;
    const headerLength = 2 + idLength + 4;
    if (bytes[0] !== WRAPPED_FORMAT_V1 || idLength === 0 || bytes.length <= headerLength) {
      throw new AppError('decryption_failed', 'Malformed wrapped key');
    }
    try {
      return new WrappedKey(
        bytes.toString('ascii', 2, 2 + idLength),
        bytes.readUInt32BE(2 + idLength),
        // A copy, so the caller's buffer can be reused.
        Buffer.from(bytes.subarray(headerLength)),
      );
    } catch (cause) {
      throw new AppError('decryption_failed', 'Malformed wrapped key', [], { cause });
    }
  }
}
