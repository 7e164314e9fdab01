import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';

import type { DataKey } from './data-key.js';
import { encodeContext, type EncryptionContext } from './encryption-context.js';
import type { WrappedKey } from './wrapped-key.js';

export interface DataKeyCacheOptions {
  /** Most unwrapped keys held at once; the least recently used goes first. */
  maxEntries?: number;
  /** How long an unwrapped key may be served without asking the provider again. */
  ttlMs?: number;
  /** Decides when a cached key has expired; tests pass a TestClock. */
  clock?: Clock;
}

/** One in-progress unwrap; identity tells a shredded (replaced) flight from the live one. */
interface Flight {
  promise: Promise<DataKey>;
}

interface Entry {
  key: DataKey;
  expiresAt: number;
}

/**
 * Unwrapped data keys, so a hot path pays one provider round trip per key, not per
 * record. Own code rather than lru-cache: ~80 lines, and it needs shred-aware single
 * flight that a generic cache does not give; this package stays dependency-free.
 *
 * Keyed by wrapped key AND context: keying by the wrapped key alone would hand the key
 * to a caller naming a different owner, skipping the provider's AAD check.
 *
 * Expiry and LRU eviction only drop the reference (a request may still be decrypting
 * with it; GC reclaims it). `evict` — crypto-shredding — zeroes the key at once, and any
 * holder then gets AppError('key_destroyed').
 */
export class DataKeyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Flight>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #clock: Clock;

  constructor(options: DataKeyCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#ttlMs = options.ttlMs ?? 10 * 60_000;
    this.#clock = options.clock ?? systemClock;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The cached key, or `load()`'s result; concurrent misses for the same key share one
   * load (so a cold start does not stampede Vault/KMS). Failed loads are not cached.
   */
  get(wrapped: WrappedKey, context: EncryptionContext, load: () => Promise<DataKey>): Promise<DataKey> {
    const id = cacheId(wrapped, context);
    const entry = this.#entries.get(id);
    if (entry) {
      this.#entries.delete(id);
      if (entry.expiresAt > this.#clock.now()) {
        this.#entries.set(id, entry); // re-insert: Map order is our LRU order
        return Promise.resolve(entry.key);
      }
    }
    const running = this.#inflight.get(id);
    if (running) return running.promise;

    const flight = {} as Flight;
    flight.promise = this.#load(id, flight, load);
    this.#inflight.set(id, flight);
    return flight.promise;
  }

  /**
   * Zeroes and forgets the key (crypto-shredding), including one still being unwrapped;
   * returns whether there was anything to forget.
   */
  evict(wrapped: WrappedKey, context: EncryptionContext): boolean {
    const id = cacheId(wrapped, context);
    const wasLoading = this.#inflight.delete(id);
    const entry = this.#entries.get(id);
    if (!entry) return wasLoading;
    entry.key.destroy();
    this.#entries.delete(id);
    return true;
  }

  /** Zeroes every cached key, e.g. at shutdown. */
  clear(): void {
    for (const entry of this.#entries.values()) entry.key.destroy();
    this.#entries.clear();
    this.#inflight.clear();
  }

  async #load(id: string, flight: Flight, load: () => Promise<DataKey>): Promise<DataKey> {
    let key: DataKey;
    try {
      key = await load();
    } catch (error) {
      if (this.#inflight.get(id) === flight) this.#inflight.delete(id);
      throw error;
    }
    // evict() ran while we were unwrapping: the key was shredded, don't resurrect it.
    if (this.#inflight.get(id) !== flight) {
      key.destroy();
      throw new AppError('key_destroyed');
    }
    this.#inflight.delete(id);
    this.#insert(id, key);
    return key;
  }

  #insert(id: string, key: DataKey): void {
    this.#entries.set(id, { key, expiresAt: this.#clock.now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }
}

/**
 * Each WrappedKey's string, made once per object: a shard opens the same (cached) WrappedKey
 * for every query, and encoding it each time was ~1 % of its CPU. A WrappedKey is a value:
 * nothing writes into its bytes after it is made.
 */
const wrappedIds = new WeakMap<WrappedKey, string>();

/**
 * The last context each WrappedKey was opened under, as its entries and its cache id: a key
 * is opened under the same owner on every query, each time in a new context object, and
 * encoding it again (sort, measure, write, base64) was ~1.5 % of a shard's CPU under
 * `pnpm bench:query`. The id is reused only for a context with exactly the same entries,
 * which encodes to exactly the same bytes; any other context is encoded and remembered instead.
 */
const lastContexts = new WeakMap<WrappedKey, { entries: Map<string, string>; id: string }>();

// base64url never contains '.', so the two halves cannot run into each other.
function cacheId(wrapped: WrappedKey, context: EncryptionContext): string {
  const last = lastContexts.get(wrapped);
  if (last !== undefined && sameEntries(last.entries, context)) return last.id;
  let wrappedId = wrappedIds.get(wrapped);
  if (wrappedId === undefined) wrappedIds.set(wrapped, (wrappedId = wrapped.toString()));
  // Encoded first: a context encodeContext refuses (a value not a string) is never remembered.
  const id = `${wrappedId}.${encodeContext(context).toString('base64url')}`;
  lastContexts.set(wrapped, { entries: new Map(Object.entries(context)), id });
  return id;
}

/** Whether `context`'s own entries are exactly `entries` (strings compared by value). */
function sameEntries(entries: Map<string, string>, context: EncryptionContext): boolean {
  const keys = Object.keys(context);
  if (keys.length !== entries.size) return false;
  for (const key of keys) {
    // A key `entries` lacks reads undefined: never a match, whatever the context holds there.
    const value = entries.get(key);
    if (value === undefined || value !== context[key]) return false;
  }
  return true;
}
