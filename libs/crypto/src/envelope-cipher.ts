import { randomBytes } from 'node:crypto';

import { AppError } from '@context-gateway/errors';

import { DATA_KEY_BYTES, DataKey } from './data-key.js';
import { DataKeyCache, type DataKeyCacheOptions } from './data-key-cache.js';
import type { EncryptionContext } from './encryption-context.js';
import type { KeyProvider } from './key-provider.js';
import { type KeyOperationObserver, observeKeyProvider } from './observed-key-provider.js';
import type { WrappedKey } from './wrapped-key.js';

export interface GeneratedDataKey {
  /** Plaintext key, owned by the caller: destroy() it when done. */
  key: DataKey;
  /** What to store (e.g. in the connection row); only the provider can open it. */
  wrapped: WrappedKey;
}

/**
 * Envelope encryption: each owner (a connection) gets its own random data key; the data
 * key encrypts the data, the provider's KEK encrypts the data key. The database then
 * holds only ciphertext and wrapped keys, and
 * - deleting one wrapped key crypto-shreds exactly that owner's data (`shred`);
 * - rotating the KEK re-wraps 32-byte keys (`rewrap`), never re-encrypts the data;
 * - `context` (e.g. {org, user, connection}) is bound into the wrap, and callers bind
 *   per-record AAD (e.g. record id and type) in DataKey.encrypt, so a row copied to
 *   another owner or another record fails to decrypt instead of leaking.
 */
export class EnvelopeCipher {
  readonly #provider: KeyProvider;
  readonly #cache: DataKeyCache;

  /** `observer`: told the latency and outcome of every provider call (the runtime's key-store metrics). */
  constructor(provider: KeyProvider, options: { cache?: DataKeyCacheOptions; observer?: KeyOperationObserver } = {}) {
    this.#provider = options.observer ? observeKeyProvider(provider, options.observer) : provider;
    this.#cache = new DataKeyCache(options.cache);
  }

  /** A fresh data key for a new owner. Not cached: the caller owns the returned key. */
  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    const bytes = randomBytes(DATA_KEY_BYTES);
    const wrapped = await this.#provider.wrapKey(bytes, context);
    return { key: new DataKey(bytes), wrapped };
  }

  /**
   * The plaintext data key, unwrapped once and then served from the cache. The returned
   * key is shared: use it, don't destroy it (use `shred` for that), and call this again
   * per request rather than holding it — that is what makes shredding and TTL effective.
   */
  openDataKey(wrapped: WrappedKey, context: EncryptionContext): Promise<DataKey> {
    return this.#cache.get(wrapped, context, async () => {
      const bytes = await this.#provider.unwrapKey(wrapped, context);
      if (bytes.length !== DATA_KEY_BYTES) {
        bytes.fill(0);
        throw new AppError('decryption_failed', 'Unwrapped key has the wrong length');
      }
      return new DataKey(bytes);
    });
  }

  /**
   * True when `wrapped` is not under the provider's current KEK (a rotation job's filter).
   * A key from another provider also reports true, but moving between providers needs
   * both of them (unwrap with the old, wrap with the new); `rewrap` cannot do it.
   */
  async needsRewrap(wrapped: WrappedKey): Promise<boolean> {
    return wrapped.providerId !== this.#provider.id || wrapped.kekVersion !== (await this.#provider.currentVersion());
  }

  /**
   * Re-wraps under the current KEK without exposing the data key here. Store the result in
   * place of the old value; cached entries for the old value simply expire.
   */
  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    return this.#provider.rewrapKey(wrapped, context);
  }

  /**
   * Crypto-shredding, in-memory half: zeroes the cached data key so nothing in this
   * process can use it again. The caller deletes the stored wrapped key (the durable half);
   * other processes drop theirs when their cache TTL ends.
   */
  shred(wrapped: WrappedKey, context: EncryptionContext): void {
    this.#cache.evict(wrapped, context);
  }

  /** Zeroes every cached data key, e.g. on shutdown. */
  close(): void {
    this.#cache.clear();
  }
}
