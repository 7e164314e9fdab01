import type { EncryptionContext } from './encryption-context.js';
import type { WrappedKey } from './wrapped-key.js';

/**
 * Holds the key-encryption keys (KEKs) and never hands them out: callers pass data keys
 * in to be wrapped and get them back unwrapped. Shaped after Vault transit and cloud KMS
 * so either can sit behind it:
 *
 * - Vault transit: `wrapKey` = `transit/encrypt/<name>` with `context` = encoded context
 *   (derived keys) or the context bound via `associated_data`; `kekVersion` = the
 *   `vault:vN:` prefix; `rewrapKey` = `transit/rewrap/<name>` (plaintext never leaves
 *   Vault); `currentVersion` = the key's `latest_version`; retiring a version =
 *   `min_decryption_version`.
 * - AWS KMS: `wrapKey` = `Encrypt` with `EncryptionContext` = the context; `rewrapKey` =
 *   `ReEncrypt`; KMS rotates backing keys itself, so a provider maps kekVersion to a
 *   configured key id (a new version = a new key id, old ids kept for decrypt).
 * - GCP KMS / Azure Key Vault: same pattern with their key versions and AAD.
 *
 * Every method binds `context`: a wrapped key only unwraps for the owner it was wrapped for.
 * Errors: unknown provider or KEK version → AppError('key_not_found'); a wrapped key that
 * fails authentication (tampered, other owner's context) → AppError('decryption_failed').
 */
export interface KeyProvider {
  /** Stored in every WrappedKey; a provider refuses keys that name another id. */
  readonly id: string;

  /** The KEK version new wraps use. */
  currentVersion(): Promise<number>;

  /** Encrypts a data key under the current KEK version. Does not retain `plaintextKey`. */
  wrapKey(plaintextKey: Uint8Array, context: EncryptionContext): Promise<WrappedKey>;

  /** Returns a fresh buffer the caller owns (and should zero when done). */
  unwrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer>;

  /**
   * Re-encrypts under the current KEK version without returning the plaintext, so
   * rotation jobs never hold data keys. Already-current keys come back re-wrapped too
   * (fresh nonce), which is harmless.
   */
  rewrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey>;
}
