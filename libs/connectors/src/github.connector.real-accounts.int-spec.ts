import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { GithubConnector, type GithubCursor } from './github.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { simulatorTokens } from './testing/simulator-oauth.js';

/**
 * The cases real GitHub accounts broke, each against the simulator with the source's real
 * behaviour switched on (quirks): starred_at only with its media type, ETags over the body
 * only, Link URLs with raw commas.
 */
describe('GithubConnector on real-shaped accounts', () => {
  let sim: RunningSimulator;
  const connector = new GithubConnector();
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'github' });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  it('stars carry the date they were starred (the star+json media type is asked for)', async () => {
    await sim.control.createAccount({ login: 'stargazer', counts: { repos: 3, starred: 12, issues: 0 } });
    const tokens = await simulatorTokens(sim, 'stargazer', 'repo read:user');
    const store = new MemoryStore();
    await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    const starred = (await sim.control.list<{ id: number; starred_at: string }>('stargazer', 'starred')).items;
    expect(store.count('code.star')).toBe(12);
    for (const s of starred) {
      const record = store.live.get(`code.star/${s.id}`);
      expect(record?.data.starredAt).toBe(s.starred_at);
      expect(record?.occurredAt).toBe(s.starred_at);
    }
  }, 30_000);

  it('an item added after two full pages is found although both pages answer 304', async () => {
    await sim.control.createAccount({ login: 'twopages', counts: { repos: 200, starred: 0, issues: 0 } });
    await sim.control.setQuirks('twopages', { etagOverBodyOnly: true });
    const tokens = await simulatorTokens(sim, 'twopages', 'repo read:user');
    const store = new MemoryStore();
    let cursor: GithubCursor = await connector.sync(
      { baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http },
      null,
    );
    expect(store.count('code.repository')).toBe(200);
    expect(cursor.repos?.pages).toHaveLength(2);
    // Sorted by full_name, this one lands on a third page; the first two are unchanged.
    const added = await sim.control.addItem<{ id: number }>('twopages', 'repos', { name: 'zzzz-last-one' });
    await sim.control.resetCounters();
    cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    expect(store.live.has(`code.repository/${added.id}`)).toBe(true);
    expect(store.count('code.repository')).toBe(201);
    expect(cursor.repos?.pages).toHaveLength(3);
    // Page 1 is still free; only the full last page is asked again.
    expect((await sim.control.counters()).notModified).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it('follows Link headers whose URLs contain commas', async () => {
    await sim.control.createAccount({ login: 'commas', counts: { repos: 250, starred: 0, issues: 0 } });
    await sim.control.setQuirks('commas', { rawCommasInLinks: true });
    const tokens = await simulatorTokens(sim, 'commas', 'repo read:user');
    const store = new MemoryStore();
    const cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(cursor.repos?.pages.map((p) => p.next ?? '').filter((n) => n.includes('affiliation=owner,'))).toHaveLength(
      2,
    );
    expect(store.count('code.repository')).toBe(250);
    expect(store.skipped).toEqual([]);
  }, 30_000);
});
