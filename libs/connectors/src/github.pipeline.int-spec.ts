import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccessTokenSource, SyncBatch } from './connector.js';
import { GithubConnector } from './github.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { simulatorTokens } from './testing/simulator-oauth.js';

/**
 * The fetch pipeline (the next page asked for while this one is parsed and handed over)
 * against the GitHub simulator over HTTP, with its secondary limit at one request at a
 * time: the account is still asked serially, pages arrive in order, and a run that fails
 * half-way is repeated from the old cursor without losing or doubling anything.
 */
describe('GithubConnector pipeline against the simulator', () => {
  let sim: RunningSimulator;
  let tokens: AccessTokenSource;
  const connector = new GithubConnector();
  const login = 'pipeliner';
  const REPOS = 1_050; // 11 pages of 100
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };

  beforeAll(async () => {
    // One request at a time per account: a second one in flight would be refused (403).
    sim = await startSimulator({ provider: 'github', maxConcurrentRequests: 1 });
    await sim.control.createAccount({ login, counts: { repos: REPOS, starred: 5, issues: 5 } });
    tokens = await simulatorTokens(sim, login, 'repo read:user');
    // Some latency, so a request sent before the previous answer was in would overlap it.
    await sim.control.settings({ latencyMs: 15 });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  /** The repositories in the order the source lists them (sort=full_name). */
  const sourceOrder = async () =>
    (await sim.control.list<{ id: number; name: string }>(login, 'repos')).items
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id))
      .map((r) => String(r.id));

  it('asks one request at a time and hands pages over in the source order, while the consumer is slow', async () => {
    await sim.control.resetCounters();
    const store = new MemoryStore();
    const order: string[] = [];
    const slowEmit = async (batch: SyncBatch) => {
      // A consumer slower than the source (a write queue that is full): the next page waits.
      for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 5));
      for (const r of batch.upserts) if (r.type === 'code.repository') order.push(r.externalId);
      await store.apply(batch);
    };
    const cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: slowEmit, skip: store.skip, http }, null);
    expect(order).toEqual(await sourceOrder());
    expect(store.count('code.repository')).toBe(REPOS);
    // Every request answered the first time: none was refused for being concurrent and retried.
    const counters = await sim.control.counters();
    expect(counters.apiRequests).toBe(1 + 11 + 1 + 1);
    expect(cursor.repos!.pages).toHaveLength(11);
  }, 60_000);

  it('a run that fails half-way returns no cursor; the repeat from the old cursor loses nothing and doubles nothing', async () => {
    const store = new MemoryStore();
    let batches = 0;
    const failing = async (batch: SyncBatch) => {
      if (++batches === 5) throw new Error('the Personal Server went away');
      await store.apply(batch);
    };
    await expect(
      connector.sync({ baseUrl: sim.url, tokens, emit: failing, skip: store.skip, http }, null),
    ).rejects.toThrow('the Personal Server went away');
    const partial = store.count('code.repository');
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(REPOS);

    // No cursor was stored, so the next run starts from the old one (none: a full sync).
    const upsertsBefore = store.upserts;
    await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(store.count('code.repository')).toBe(REPOS);
    expect(
      store
        .of('code.repository')
        .map((r) => r.externalId)
        .sort(),
    ).toEqual((await sourceOrder()).sort());
    expect(store.tombstones.size).toBe(0);
    // The repeat wrote every record once more under the same keys (idempotent upserts), no more.
    expect(store.upserts - upsertsBefore).toBe(1 + REPOS + 5 + 5);
  }, 60_000);
});
