import type { EncryptionContext } from './encryption-context.js';
import type { KeyProvider } from './key-provider.js';
import type { WrappedKey } from './wrapped-key.js';

/** One call to the key store, as an operator watches it: which provider, what, how long, whether it worked. */
export interface KeyOperation {
  provider: string;
  operation: 'wrap' | 'unwrap' | 'rewrap';
  seconds: number;
  ok: boolean;
}

/**
 * Told about every wrap, unwrap and rewrap. The runtime (service-kit's `Metrics.keyStore`)
 * turns these into a latency histogram, so this library needs no metrics dependency and a
 * remote KMS's latency shows up wherever keys are opened. Must not throw.
 */
export interface KeyOperationObserver {
  keyOperation(event: KeyOperation): void;
}

/**
 * `provider` with every KEK operation timed and reported to `observer`; `id` and
 * `currentVersion` pass through untimed (no round trip worth watching in the local
 * provider, and a remote one caches its version).
 */
export function observeKeyProvider(provider: KeyProvider, observer: KeyOperationObserver): KeyProvider {
  const timed = async <T>(operation: KeyOperation['operation'], call: () => Promise<T>): Promise<T> => {
    // Only for the metric: nothing decides by this time.
    const started = performance.now();
    let ok = false;
    try {
      const result = await call();
      ok = true;
      return result;
    } finally {
      observer.keyOperation({ provider: provider.id, operation, seconds: (performance.now() - started) / 1000, ok });
    }
  };
  return {
    id: provider.id,
    currentVersion: () => provider.currentVersion(),
    wrapKey: (key: Uint8Array, context: EncryptionContext) => timed('wrap', () => provider.wrapKey(key, context)),
    unwrapKey: (wrapped: WrappedKey, context: EncryptionContext) =>
      timed('unwrap', () => provider.unwrapKey(wrapped, context)),
    rewrapKey: (wrapped: WrappedKey, context: EncryptionContext) =>
      timed('rewrap', () => provider.rewrapKey(wrapped, context)),
  };
}
