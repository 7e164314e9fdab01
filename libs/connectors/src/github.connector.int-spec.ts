import { validateRecord } from '@context-gateway/record-catalog';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccessTokenSource, SyncBatch } from './connector.js';
import { GithubConnector, type GithubCursor } from './github.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { simulatorTokens } from './testing/simulator-oauth.js';

/**
 * The GitHub connector against the GitHub simulator over HTTP: the real API shapes (Link
 * pagination, ETags, X-RateLimit-*, Retry-After), the real OAuth refresh.
 */

describe('GithubConnector against the simulator', () => {
  let sim: RunningSimulator;
  let tokens: AccessTokenSource & { refreshes: number };
  const connector = new GithubConnector();
  const store = new MemoryStore();
  let cursor: GithubCursor;
  const login = 'syncer';
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'github' });
    await sim.control.createAccount({ login, counts: { repos: 250, starred: 130, issues: 40 } });
    tokens = await simulatorTokens(sim, login, 'repo read:user');
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  it('full sync walks every page and produces catalog-valid records', async () => {
    await sim.control.resetCounters();
    cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(store.count('code.repository')).toBe(250);
    expect(store.count('code.star')).toBe(130);
    expect(store.count('code.issue')).toBe(40);
    expect(store.count('profile')).toBe(1);
    // 100 per page: 3 pages of repos, 2 of stars, 1 of issues.
    expect(cursor.repos!.pages).toHaveLength(3);
    expect(cursor.starred!.pages).toHaveLength(2);
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
  }, 30_000);

  it('an incremental sync of an unchanged account costs only 304s and writes nothing', async () => {
    await sim.control.resetCounters();
    const before = store.batches;
    cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    expect(store.batches).toBe(before);
    const counters = await sim.control.counters();
    expect(counters.notModified).toBe(1 + 3 + 2 + 1);
  }, 30_000);

  it('an incremental sync picks up adds, edits and deletes (deletes become tombstones)', async () => {
    const repos = (await sim.control.list<{ id: number; name: string }>(login, 'repos')).items;
    const edited = repos[10]!;
    const deleted = repos[200]!;
    const added = await sim.control.addItem<{ id: number }>(login, 'repos', {
      name: 'brand-new-repo',
      description: 'added between syncs',
    });
    await sim.control.updateItem(login, 'repos', edited.id, { description: 'edited between syncs' });
    await sim.control.deleteItem(login, 'repos', deleted.id);
    const star = (await sim.control.list<{ id: number }>(login, 'starred')).items[5]!;
    await sim.control.deleteItem(login, 'starred', star.id);

    cursor = await connector.sync({ baseUrl: sim.url, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    expect(store.count('code.repository')).toBe(250);
    expect(store.live.get(`code.repository/${added.id}`)?.data).toMatchObject({ description: 'added between syncs' });
    expect(store.live.get(`code.repository/${edited.id}`)?.data).toMatchObject({ description: 'edited between syncs' });
    expect(store.tombstones.has(`code.repository/${deleted.id}`)).toBe(true);
    expect(store.tombstones.has(`code.star/${star.id}`)).toBe(true);
    expect(store.count('code.star')).toBe(129);
  }, 30_000);

  it('survives a rate-limit storm (secondary limit, Retry-After) with the same result', async () => {
    const fresh = new MemoryStore();
    await sim.control.startStorm({
      everyNth: 2,
      retryAfterSeconds: 1,
      status: 403,
      kind: 'secondary',
      durationSeconds: 4,
    });
    await sim.control.resetCounters();
    await connector.sync({ baseUrl: sim.url, tokens, emit: fresh.apply, skip: fresh.skip, http }, null);
    await sim.control.stopStorm();
    expect((await sim.control.counters()).throttled).toBeGreaterThan(0);
    expect(fresh.count('code.repository')).toBe(250);
    expect(fresh.count('code.star')).toBe(129);
  }, 30_000);

  it('waits out a spent primary budget (X-RateLimit-Remaining: 0 until X-RateLimit-Reset)', async () => {
    const fresh = new MemoryStore();
    await sim.control.startStorm({
      everyNth: 3,
      retryAfterSeconds: 1,
      status: 403,
      kind: 'primary',
      durationSeconds: 3,
    });
    await connector.sync({ baseUrl: sim.url, tokens, emit: fresh.apply, skip: fresh.skip, http }, null);
    await sim.control.stopStorm();
    expect(fresh.count('code.repository')).toBe(250);
  }, 30_000);

  it('a token expiring in the middle of a sync is refreshed and the sync completes', async () => {
    const fresh = new MemoryStore();
    const refreshesBefore = tokens.refreshes;
    let expired = false;
    const emit = async (batch: SyncBatch) => {
      await fresh.apply(batch);
      // After the first page of repositories, the source expires every access token.
      if (!expired && batch.upserts.some((r) => r.type === 'code.repository')) {
        expired = true;
        await sim.control.expireTokens(false);
      }
    };
    await connector.sync({ baseUrl: sim.url, tokens, emit, skip: fresh.skip, http }, null);
    expect(expired).toBe(true);
    expect(tokens.refreshes).toBe(refreshesBefore + 1);
    expect(fresh.count('code.repository')).toBe(250);
    expect(fresh.count('code.issue')).toBe(40);
  }, 30_000);
});
