import { validateRecord } from '@context-gateway/record-catalog';
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

  it('null fields: no description, language, license, pushed_at, issue body or author; every record stored', async () => {
    await sim.control.createAccount({ login: 'nulls', counts: { repos: 30, starred: 30, issues: 30 } });
    await sim.control.setQuirks('nulls', { nullFields: true });
    const tokens = await simulatorTokens(sim, 'nulls', 'repo read:user');
    const store = new MemoryStore();
    await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(store.skipped).toEqual([]);
    expect([store.count('code.repository'), store.count('code.star'), store.count('code.issue')]).toEqual([30, 30, 30]);
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    for (const r of store.of('code.repository')) {
      expect(r.data.description).toBeUndefined();
      expect(r.data.language).toBeUndefined();
      expect(r.data.pushedAt).toBeUndefined();
    }
    for (const i of store.of('code.issue')) expect(i.data.author).toBeUndefined();
    expect(store.of('profile')[0]?.data.displayName).toBeUndefined();
  }, 30_000);

  it('items added at the head between pages: nothing is lost, the new ones come with the next run', async () => {
    await sim.control.createAccount({ login: 'shifting', counts: { repos: 250, starred: 150, issues: 120 } });
    await sim.control.setQuirks('shifting', { shiftingPages: 'insert' });
    const tokens = await simulatorTokens(sim, 'shifting', 'repo read:user');
    const ids = async (collection: string) =>
      (await sim.control.list<{ id: number }>('shifting', collection)).items.map((i) => i.id);
    const before = { repos: await ids('repos'), starred: await ids('starred'), issues: await ids('issues') };
    const type = { repos: 'code.repository', starred: 'code.star', issues: 'code.issue' } as const;
    const store = new MemoryStore();
    const cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(store.skipped).toEqual([]);
    const added: string[] = [];
    for (const c of ['repos', 'starred', 'issues'] as const) {
      // Every item there when the run began is stored, though each later page was shifted by one.
      for (const id of before[c]) expect(store.live.has(`${type[c]}/${id}`)).toBe(true);
      const during = (await ids(c)).filter((id) => !before[c].includes(id));
      expect(during).toHaveLength(1);
      added.push(`${type[c]}/${during[0]}`);
    }
    // Added after page 1 was read: this run could not see them; the next run does.
    await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    for (const key of added) expect(store.live.has(key)).toBe(true);
    expect(store.count('code.repository')).toBeGreaterThanOrEqual(251);
  }, 30_000);

  it('items removed between pages: no live item is ever tombstoned; the removed ones go by the next run', async () => {
    await sim.control.createAccount({ login: 'removing', counts: { repos: 250, starred: 150, issues: 120 } });
    const tokens = await simulatorTokens(sim, 'removing', 'repo read:user');
    const ids = async (collection: string) =>
      (await sim.control.list<{ id: number }>('removing', collection)).items.map((i) => String(i.id));
    const collections = ['repos', 'starred', 'issues'] as const;
    const type = { repos: 'code.repository', starred: 'code.star', issues: 'code.issue' } as const;
    const store = new MemoryStore();
    const ctx = { baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http };
    let cursor = await connector.sync(ctx, null);
    const before = { repos: await ids('repos'), starred: await ids('starred'), issues: await ids('issues') };
    // An incremental run during which the head item of every listing is removed after each
    // first page served: the first walk misses a live item (later pages shifted), so the run
    // walks again at once (and the listing shifts again under that walk).
    await sim.control.setQuirks('removing', { shiftingPages: 'remove' });
    cursor = await connector.sync(ctx, cursor);
    await sim.control.setQuirks('removing', {});
    const after = { repos: await ids('repos'), starred: await ids('starred'), issues: await ids('issues') };
    for (const c of collections) {
      expect(before[c].filter((id) => !after[c].includes(id)).length).toBeGreaterThanOrEqual(1);
      // Nothing that exists at the source is tombstoned.
      for (const id of after[c]) expect(store.live.has(`${type[c]}/${id}`)).toBe(true);
    }
    // The next run settles what is gone: the store is the source again.
    cursor = await connector.sync(ctx, cursor);
    for (const c of collections) {
      expect(
        store
          .of(type[c])
          .map((r) => r.externalId)
          .sort(),
      ).toEqual([...after[c]].sort());
      for (const id of before[c].filter((i) => !after[c].includes(i)))
        expect(store.tombstones.has(`${type[c]}/${id}`)).toBe(true);
      expect(cursor[c]?.missed).toBeUndefined();
    }
    expect(store.skipped).toEqual([]);
  }, 30_000);
});
