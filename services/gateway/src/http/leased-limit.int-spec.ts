import { fileURLToPath } from 'node:url';

import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { LeasedLimit, leaseSize, type LeaseStore } from './leased-limit.js';

// The shared request limit against the real `rate_limits` table (the gateway's migrations):
// replicas lease points from one counter, never admit more than the limit together, and
// a request costs no query while its replica holds points.

let harness: ServiceHarness;
const pool = () => harness.db.pool;

/** The pool, counting the statements that reach Postgres. */
function countingStore(): LeaseStore & { queries: number } {
  const store = {
    queries: 0,
    query: (text: string, values: unknown[]) => {
      store.queries += 1;
      return pool().query(text, values) as unknown as ReturnType<LeaseStore['query']>;
    },
  };
  return store;
}

const replica = (
  store: LeaseStore,
  points: number,
  extra: Partial<ConstructorParameters<typeof LeasedLimit>[0]> = {},
) => new LeasedLimit({ store, prefix: 'key', points, windowSeconds: 60, replicas: 2, storeTimeoutMs: 1_000, ...extra });

beforeAll(async () => {
  // The gateway's schema (its migrations make `rate_limits`); the harness's NATS is not used.
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_leases',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
});

afterAll(async () => {
  await harness.stop();
});

describe('a limit leased from the shared counter', () => {
  it('two replicas together admit at most the limit, and lose at most one lease each', async () => {
    const points = 200;
    const lease = leaseSize(points, 2);
    expect(lease).toBe(6);
    const store = countingStore();
    const [a, b] = [replica(store, points), replica(store, points)];
    let admitted = 0;
    for (let i = 0; i < 2 * points; i += 1) if ((await (i % 2 ? a : b).take('k1')) === undefined) admitted += 1;
    expect(admitted).toBeLessThanOrEqual(points);
    expect(admitted).toBeGreaterThanOrEqual(points - 2 * lease);
    // One upsert per lease, not per request.
    expect(store.queries).toBeLessThanOrEqual(Math.ceil(points / lease) + 4);
    // Once refused, the key is refused from memory: no more queries until its window ends.
    const before = store.queries;
    expect(await a.take('k1')).toBeGreaterThan(0);
    expect(store.queries).toBe(before);
  });

  it('while a lease lasts, a request is answered at once, not as a promise; a new lease is a promise', async () => {
    const store = countingStore();
    const limit = replica(store, 200);
    const first = limit.take('now');
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toBeUndefined();
    // The other 5 of the lease's 6 points: decided from memory, in the same tick.
    for (let i = 1; i < leaseSize(200, 2); i += 1) expect(limit.take('now')).toBeUndefined();
    expect(store.queries).toBe(1);
    const next = limit.take('now');
    expect(next).toBeInstanceOf(Promise);
    expect(await next).toBeUndefined();
    // Once a lease found the key spent, it is refused from memory, at once too.
    const spent = replica(store, 1, { replicas: 1 });
    expect(await spent.take('spent')).toBeUndefined();
    expect(await spent.take('spent')).toBeGreaterThan(0);
    expect(spent.take('spent')).toBeGreaterThan(0);
  });

  it('a crowd of concurrent requests of one key gets exactly the limit when a lease is one point', async () => {
    const store = countingStore();
    const limits = [replica(store, 10), replica(store, 10)];
    expect(leaseSize(10, 2)).toBe(1);
    const outcomes = await Promise.all(Array.from({ length: 60 }, async (_, i) => limits[i % 2]!.take('crowd')));
    expect(outcomes.filter((o) => o === undefined)).toHaveLength(10);
    expect(outcomes.filter((o) => o !== undefined).every((o) => (o ?? 0) >= 1)).toBe(true);
  });

  it('a new window starts the count again', async () => {
    let now = Date.parse('2026-12-06T10:00:00Z');
    const store = countingStore();
    const limit = replica(store, 3, { now: () => now, windowSeconds: 10 });
    for (let i = 0; i < 3; i += 1) expect(await limit.take('win')).toBeUndefined();
    expect(await limit.take('win')).toBe(10);
    now += 10_001;
    expect(await limit.take('win')).toBeUndefined();
    const { rows } = await pool().query<{ points: number }>(`SELECT points FROM rate_limits WHERE key = 'key:win'`);
    expect(rows[0]?.points).toBe(1);
  });

  it('without Postgres in time, a replica counts alone against its share and never waits longer than the timeout', async () => {
    const stalled: LeaseStore = { query: () => new Promise(() => undefined) };
    const limit = replica(stalled, 10, { storeTimeoutMs: 50 });
    const started = Date.now();
    const outcomes = [];
    for (let i = 0; i < 6; i += 1) outcomes.push(await limit.take('down'));
    expect(outcomes.slice(0, 5)).toEqual(Array(5).fill(undefined));
    expect(outcomes[5]).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(6 * 50 + 1_000);
  });
});
