import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** The slice of pg's Pool this needs (the gateway's PG_POOL; search_path is the gateway schema). */
export interface LeaseStore {
  query(text: string, values: unknown[]): Promise<{ rows: { points: number; expire: string | number }[] }>;
}

export interface LeasedLimitOptions {
  store: LeaseStore;
  /** Prefix of the counters' keys in `rate_limits` (`key`, `ip`). */
  prefix: string;
  /** Requests per window, across every replica. */
  points: number;
  windowSeconds: number;
  /** Replicas deployed: sizes the leases and, when the store cannot be reached, this process's share. */
  replicas: number;
  /** Longest wait for the shared counter before this process counts alone. */
  storeTimeoutMs: number;
  /** Most keys held in memory (the oldest are forgotten first: they lease again when they come back). */
  maxKeys?: number;
  now?: () => number;
}

/** Points one lease takes: a sixteenth of a replica's share, at least 1, at most 1,000. */
export function leaseSize(points: number, replicas: number): number {
  return Math.max(1, Math.min(1_000, Math.floor(points / (replicas * 16))));
}

/** What `#fromMemory` answers when memory cannot decide: a lease must be asked for. */
const LEASE = Symbol('lease');

interface Held {
  /** When the shared window ends (epoch ms). */
  expire: number;
  /** Points leased and not yet used. */
  left: number;
  /** The shared counter is at the limit: refused from memory until `expire`. */
  spent: boolean;
}

/**
 * A request limit shared by every gateway replica, without a database round trip per
 * request. A replica LEASES points from the shared counter in `rate_limits` — one upsert adds
 * a lease's worth to the key's count for the current window and returns the total — and
 * spends them from memory; only when its lease is used up does it ask again. Every point a
 * replica admits was first counted in Postgres, so the replicas together never admit more
 * than `points` per window (what the per-request count guaranteed). The price is the other
 * way: points leased and not used when the window ends are lost, at most one lease per
 * replica (`leaseSize`: a sixteenth of a replica's share). With a small limit a lease is one
 * point, and it is the per-request count again. When Postgres is slow or down (past
 * `storeTimeoutMs`), the request is counted by this process alone against its share of the
 * limit, never refused for it. The counter rows have rate-limiter-flexible's
 * RateLimiterPostgres layout, so the per-address failure limit (rate-limits.ts) shares the
 * table and its sweep.
 */
export class LeasedLimit {
  readonly #held = new Map<string, Held>();
  readonly #leasing = new Map<string, Promise<Held>>();
  readonly #insurance: RateLimiterMemory;
  readonly #lease: number;
  readonly #now: () => number;

  constructor(private readonly options: LeasedLimitOptions) {
    this.#lease = leaseSize(options.points, options.replicas);
    this.#now = options.now ?? Date.now;
    this.#insurance = new RateLimiterMemory({
      keyPrefix: options.prefix,
      points: Math.max(1, Math.floor(options.points / options.replicas)),
      duration: options.windowSeconds,
    });
  }

  /**
   * Counts one request for `key`: undefined when admitted, else the seconds until its window
   * ends. Decided from memory while this replica holds points for the key, or knows it spent
   * — returned as is, not as a promise: every request passes here, and a promise (with its
   * AsyncLocalStorage hooks) per limit per request is what this path no longer costs. A
   * promise only when a lease must be asked for.
   */
  take(key: string): number | undefined | Promise<number | undefined> {
    const decided = this.#fromMemory(key);
    return decided === LEASE ? this.#leaseThenTake(key) : decided;
  }

  /** Spends a held point (undefined), refuses a spent key (seconds), or says a lease is needed. */
  #fromMemory(key: string): number | undefined | typeof LEASE {
    const now = this.#now();
    let held = this.#held.get(key);
    if (held && held.expire <= now) {
      this.#held.delete(key);
      held = undefined;
    }
    if (held && held.left > 0) {
      held.left -= 1;
      return undefined;
    }
    if (held?.spent) return waitSeconds(held.expire - now);
    return LEASE;
  }

  async #leaseThenTake(key: string): Promise<number | undefined> {
    // Each turn waits for a lease, which grants at least one point (to whoever takes it first)
    // or finds the key spent: a crowd of one key's requests is served a lease at a time. The
    // bound only guards against a livelock nobody has seen.
    for (let turn = 0; turn < 10_000; turn += 1) {
      try {
        await this.#leaseFor(key);
      } catch {
        return this.#alone(key);
      }
      const decided = this.#fromMemory(key);
      if (decided !== LEASE) return decided;
    }
    return 1;
  }

  /** One lease in flight per key: concurrent requests of a key wait for the same one. */
  #leaseFor(key: string): Promise<Held> {
    const pending = this.#leasing.get(key);
    if (pending) return pending;
    const lease = this.#fetchLease(key).finally(() => this.#leasing.delete(key));
    this.#leasing.set(key, lease);
    return lease;
  }

  async #fetchLease(key: string): Promise<Held> {
    const now = this.#now();
    const windowEnd = now + this.options.windowSeconds * 1_000;
    const counted = this.options.store.query(
      `INSERT INTO rate_limits (key, points, expire) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET
         points = CASE WHEN rate_limits.expire IS NULL OR rate_limits.expire <= $4
                       THEN EXCLUDED.points ELSE rate_limits.points + EXCLUDED.points END,
         expire = CASE WHEN rate_limits.expire IS NULL OR rate_limits.expire <= $4
                       THEN EXCLUDED.expire ELSE rate_limits.expire END
       RETURNING points, expire`,
      [`${this.options.prefix}:${key}`, this.#lease, windowEnd, now],
    );
    const { rows } = await withTimeout(counted, this.options.storeTimeoutMs);
    const row = rows[0];
    if (!row) throw new Error('the rate-limit upsert returned no row');
    const total = Number(row.points);
    // Only what was still under the limit before this lease is ours to spend.
    const granted = Math.max(0, Math.min(this.#lease, this.options.points - (total - this.#lease)));
    const held: Held = { expire: Number(row.expire), left: granted, spent: granted === 0 };
    this.#remember(key, held);
    return held;
  }

  #remember(key: string, held: Held): void {
    const existing = this.#held.get(key);
    if (existing && existing.expire === held.expire) {
      // Another lease of the same window: what it granted adds to what is left.
      existing.left += held.left;
      existing.spent = existing.left === 0 && held.spent;
      return;
    }
    this.#held.delete(key);
    if (this.#held.size >= (this.options.maxKeys ?? 100_000)) {
      const oldest = this.#held.keys().next();
      if (!oldest.done) this.#held.delete(oldest.value);
    }
    this.#held.set(key, held);
  }

  /** Without the shared counter: this process's share of the limit, counted in memory. */
  async #alone(key: string): Promise<number | undefined> {
    try {
      await this.#insurance.consume(key);
      return undefined;
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return waitSeconds(refusal.msBeforeNext);
      return undefined;
    }
  }
}

function waitSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1_000));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the rate-limit store did not answer within ${ms} ms`)), ms);
  });
  // A late answer is dropped; its lease stays counted in Postgres (at most one lease lost).
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
