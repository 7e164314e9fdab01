import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRes,
  type RateLimiterStoreAbstract,
  RLWrapperTimeouts,
} from 'rate-limiter-flexible';

import type { TokenDigest } from '../auth/token-digest.js';
import { LeasedLimit, type LeaseStore } from './leased-limit.js';

interface RateLimitOptions {
  /** The gateway's pg pool (PG_POOL): its search_path is the gateway schema, where `rate_limits` lives. */
  pool: { query: (...args: never[]) => unknown };
  windowSeconds: number;
  /** Requests per window per API key / access token; 0: no such limit. */
  perKey: number;
  /** Requests per window per client address; 0: no such limit. */
  perIp: number;
  /** Longest wait for the shared counter before this process counts alone. */
  storeTimeoutMs: number;
  /** Replicas deployed: a process alone enforces its share of each limit. */
  replicas: number;
}

/** A refusal: which limit, and when the window that refused it ends. */
export interface RateLimited {
  limit: 'key' | 'ip';
  retryAfterSeconds: number;
}

/**
 * Per-key and per-address request limits, counted in Postgres so that every gateway
 * replica shares one count (a limit per process would multiply by the replica count). Each
 * is a LeasedLimit (leased-limit.ts): a replica reserves points from the shared counter on
 * the UNLOGGED `gateway.rate_limits` (migration 20261204220547) a lease at a time and spends
 * them from memory, so the replicas together never admit more than the limit and a request
 * costs no query while its replica holds points (one upsert per lease, not per request). A
 * key that is over its limit is refused from memory until its window ends. The data plane
 * keeps serving when Postgres is slow or down: past `storeTimeoutMs` the request is counted
 * by this process alone against its share of the limit, never refused for it.
 */
export class RateLimits {
  private readonly perKey: LeasedLimit | undefined;
  private readonly perIp: LeasedLimit | undefined;

  constructor(options: RateLimitOptions) {
    this.perKey = options.perKey > 0 ? leased('key', options.perKey, options) : undefined;
    this.perIp = options.perIp > 0 ? leased('ip', options.perIp, options) : undefined;
  }

  /**
   * Counts one request; the first limit it is over, or undefined. `bearer`: the request's
   * bearer token, counted under its digest — the token itself never reaches the table.
   * Answered at once (not as a promise) when both limits decide from memory, as they do while
   * this replica holds leased points (LeasedLimit.take); a promise only while a lease is asked.
   */
  take(
    clientAddress: string,
    bearer: TokenDigest | undefined,
  ): RateLimited | undefined | Promise<RateLimited | undefined> {
    const ip = this.perIp?.take(clientAddress);
    if (ip instanceof Promise)
      return ip.then((seconds) => (seconds === undefined ? this.takeKey(bearer) : byIp(seconds)));
    return ip === undefined ? this.takeKey(bearer) : byIp(ip);
  }

  private takeKey(bearer: TokenDigest | undefined): RateLimited | undefined | Promise<RateLimited | undefined> {
    const seconds = bearer === undefined ? undefined : this.perKey?.take(bearer.digest);
    return seconds instanceof Promise ? seconds.then(byKey) : byKey(seconds);
  }
}

const byIp = (seconds: number): RateLimited => ({ limit: 'ip', retryAfterSeconds: seconds });
const byKey = (seconds: number | undefined): RateLimited | undefined =>
  seconds === undefined ? undefined : { limit: 'key', retryAfterSeconds: seconds };

function leased(prefix: 'key' | 'ip', points: number, options: RateLimitOptions): LeasedLimit {
  return new LeasedLimit({
    store: options.pool as unknown as LeaseStore,
    prefix,
    points,
    windowSeconds: options.windowSeconds,
    replicas: options.replicas,
    storeTimeoutMs: options.storeTimeoutMs,
  });
}

/** The per-address failure count: rare events, counted one upsert each (rate-limiter-flexible). */
function limiter(
  prefix: 'authfail',
  points: number,
  options: Pick<RateLimitOptions, 'pool' | 'windowSeconds' | 'storeTimeoutMs' | 'replicas'>,
): RLWrapperTimeouts {
  const shared: RateLimiterStoreAbstract = new RateLimiterPostgres({
    storeClient: options.pool,
    storeType: 'pool',
    tableName: 'rate_limits',
    // The migration owns the table; the limiter must not try to create it.
    tableCreated: true,
    // Expired rows are deleted by the gateway's own sweep (sweepExpiredRateLimits), which
    // stops with the server: the library's 5-minute timer would outlive it.
    clearExpiredByTimeout: false,
    keyPrefix: prefix,
    points,
    duration: options.windowSeconds,
    inMemoryBlockOnConsumed: points + 1,
  });
  return new RLWrapperTimeouts({
    limiter: shared,
    timeoutMs: options.storeTimeoutMs,
    insuranceLimiter: new RateLimiterMemory({
      keyPrefix: prefix,
      points: Math.max(1, Math.floor(points / options.replicas)),
      duration: options.windowSeconds,
    }),
  });
}

/**
 * Failed authentications per client address (a bad API key, operator token or session
 * cookie), counted across every replica like the request limits: once an address is over
 * `points` failures in the window it is refused (429) before its credentials are even
 * looked at, until the window ends (by this replica at once; by another at its next failure
 * there). Guessing keys costs the guesser, and the audit trail
 * gets at most `points` failure events per address and window.
 */
export class AuthFailureLimit {
  private readonly limit: RLWrapperTimeouts | undefined;
  /**
   * Addresses this replica saw go over, until when (epoch ms): the check before each
   * authentication reads only this, never Postgres, so authenticated traffic pays nothing.
   * Another replica learns of a block at that address's next failure there (the count is shared).
   */
  readonly #blockedUntil = new Map<string, number>();

  constructor(
    points: number,
    options: Pick<RateLimitOptions, 'pool' | 'windowSeconds' | 'storeTimeoutMs' | 'replicas'>,
    private readonly now: () => number = Date.now,
  ) {
    this.limit = points > 0 ? limiter('authfail', points, options) : undefined;
  }

  /** Seconds the address must wait when it is over its failures; undefined when it may try. */
  blocked(address: string): number | undefined {
    const until = this.#blockedUntil.get(address);
    if (until === undefined) return undefined;
    const left = until - this.now();
    if (left > 0) return Math.max(1, Math.ceil(left / 1_000));
    this.#blockedUntil.delete(address);
    return undefined;
  }

  /** Counts one failure; the wait when this one put the address over the limit. */
  async failed(address: string): Promise<number | undefined> {
    const wait = await consume(this.limit, address);
    if (wait !== undefined) {
      // Bounded: a flood from many addresses cannot grow it without end (the oldest go first).
      if (this.#blockedUntil.size >= MAX_BLOCKED_ADDRESSES) {
        const oldest = this.#blockedUntil.keys().next();
        if (!oldest.done) this.#blockedUntil.delete(oldest.value);
      }
      this.#blockedUntil.set(address, this.now() + wait * 1_000);
    }
    return wait;
  }
}

const MAX_BLOCKED_ADDRESSES = 100_000;

/** Seconds until `key` may try again when it is over the limit; undefined when allowed. */
async function consume(limit: RLWrapperTimeouts | undefined, key: string): Promise<number | undefined> {
  if (!limit) return undefined;
  try {
    await limit.consume(key);
    return undefined;
  } catch (refusal) {
    if (refusal instanceof RateLimiterRes) return Math.max(1, Math.ceil(refusal.msBeforeNext / 1_000));
    // Both the shared store and the insurance failed: count nothing rather than refuse.
    return undefined;
  }
}

/** How often expired counters are deleted, and how long after expiry. */
const SWEEP_EVERY_MS = 300_000;
const SWEEP_AFTER_EXPIRY_MS = 3_600_000;

/**
 * Deletes counters that expired an hour ago, every five minutes, until the returned stop()
 * (the gateway calls it when the server closes: no query may run after the pool ends).
 * Replicas sweeping at once delete the same rows; that is harmless.
 */
export function sweepExpiredRateLimits(
  pool: { query: (text: string, values: unknown[]) => Promise<unknown> },
  onError: (error: unknown) => void,
): { stop: () => void } {
  const timer = setInterval(() => {
    pool.query('DELETE FROM rate_limits WHERE expire < $1', [Date.now() - SWEEP_AFTER_EXPIRY_MS]).catch(onError);
  }, SWEEP_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
