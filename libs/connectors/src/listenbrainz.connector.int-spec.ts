import { AppError } from '@context-gateway/errors';
import { validateRecord } from '@context-gateway/record-catalog';
import { defaultListenBrainzToken, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccessTokenSource, SyncContext } from './connector.js';
import { ListenBrainzConnector, type ListenBrainzCursor } from './listenbrainz.connector.js';
import { connectorFor } from './registry.js';
import { MemoryStore } from './testing/memory-store.js';

/**
 * The ListenBrainz connector against the ListenBrainz simulator over HTTP: the user token as
 * `Authorization: Token`, the walk back with max_ts, the walk forward with min_ts from a
 * lookback before the newest listen held, listens sharing a second across a page edge,
 * brainzutils' rate limit, and listens it cannot read. Same-second paging in detail, and
 * sources that ignore the bounds: listenbrainz.pages.int-spec.ts.
 */
describe('ListenBrainzConnector against the simulator', () => {
  let sim: RunningSimulator;
  const login = 'lena';
  const TOTAL = 1234;
  let token: string;
  const http = { maxWaitMs: 15_000, backoffBaseMs: 20 };
  const keyTokens = (k: string): AccessTokenSource => ({
    current: () => Promise.resolve(k),
    refresh: () => Promise.reject(new AppError('connection_needs_reauth', 'the user token was refused')),
  });
  const ctxFor = (store: MemoryStore, key = token): SyncContext => ({
    baseUrl: sim.url,
    tokens: keyTokens(key),
    emit: store.apply,
    skip: store.skip,
    http,
  });
  type Listen = { id: string; listened_at: number; recording_msid: string };
  const listens = async () =>
    (await sim.control.list<Listen>(login, 'listens')).items.sort((a, b) => b.listened_at - a.listened_at);
  const idOf = (l: Listen) => `${l.listened_at}:${l.recording_msid}`;

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'listenbrainz', rateLimit: 100_000 });
    await sim.control.createAccount({ login, counts: { listens: TOTAL } });
    token = defaultListenBrainzToken(`listenbrainz:${login}`);
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  it('is the registered connector for listenbrainz, producing profile and media.play_event', () => {
    expect(connectorFor('listenbrainz')).toBeInstanceOf(ListenBrainzConnector);
    expect(connectorFor('listenbrainz')!.produces).toEqual(['profile', 'media.play_event']);
  });

  it('a full sync walks the whole history back into catalog-valid play events, one per listen', async () => {
    const store = new MemoryStore();
    await sim.control.resetCounters();
    const cursor = await new ListenBrainzConnector({ pageSize: 100 }).sync(ctxFor(store), null);
    expect(store.count('media.play_event')).toBe(TOTAL);
    expect(store.skipped).toEqual([]);
    expect(store.live.get(`profile/${login}`)?.data).toEqual({
      source: 'listenbrainz',
      id: login,
      handle: login,
      url: `https://listenbrainz.org/user/${login}/`,
    });
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    const all = await listens();
    expect(new Set(store.of('media.play_event').map((r) => r.externalId))).toEqual(new Set(all.map(idOf)));
    expect(cursor).toEqual({ v: 1, user: login, newest: all[0]!.listened_at, newestIds: [idOf(all[0]!)] });
    // 13 pages of 100 and the token check; no page asked for twice.
    const counters = await sim.control.counters();
    expect(counters.byRoute['GET /1/user/:user/listens']).toBe(13);
    // What scrobblers send in different ways comes out in one shape.
    const plays = store.of('media.play_event').map((r) => r.data);
    expect(plays.every((p) => p.kind === 'music' && p.supplemental === false)).toBe(true);
    expect(plays.some((p) => (p.creators as string[]).length === 2 && (p.creatorIds as string[]).length === 2)).toBe(
      true,
    );
    expect(plays.some((p) => typeof p.isrc === 'string')).toBe(true);
    expect(plays.some((p) => typeof p.itemDurationMs === 'number' && p.itemDurationMs % 1000 === 0)).toBe(true);
    expect(plays.every((p) => !('durationMs' in p) || (p.durationMs as number) <= 240_000)).toBe(true);
  }, 60_000);

  it('with no lookback the next run fetches only the listens after the newest held, even one sharing its second', async () => {
    const store = new MemoryStore();
    const connector = new ListenBrainzConnector({ pageSize: 100, lookbackSeconds: 0 });
    let cursor: ListenBrainzCursor = await connector.sync(ctxFor(store), null);
    const newest = (await listens())[0]!;
    // A listen in the same second as the newest held (another track), and two later ones.
    const twin = await sim.control.addItem<Listen>(login, 'listens', { listened_at: newest.listened_at });
    const later = await sim.control.addItem<Listen>(login, 'listens', {});
    const last = await sim.control.addItem<Listen>(login, 'listens', {});
    const before = store.upserts;
    cursor = await connector.sync(ctxFor(store), cursor);
    // The profile again, and exactly the three new listens.
    expect(store.upserts - before).toBe(1 + 3);
    for (const l of [twin, later, last]) expect(store.live.has(`media.play_event/${idOf(l)}`)).toBe(true);
    expect(store.count('media.play_event')).toBe(TOTAL + 3);
    expect(cursor.newest).toBe(last.listened_at);
    // Nothing new: only the profile is written.
    const quiet = store.upserts;
    await connector.sync(ctxFor(store), cursor);
    expect(store.upserts - quiet).toBe(1);
  }, 60_000);

  it('a listen stored later with a past listened_at is fetched when it is within the lookback', async () => {
    const HOUR = 3600;
    const store = new MemoryStore();
    const connector = new ListenBrainzConnector({ pageSize: 100, lookbackSeconds: 6 * HOUR });
    let cursor = await connector.sync(ctxFor(store), null);
    const held = await listens();
    const newest = held[0]!.listened_at;
    // As an import or a scrobbler's offline queue submits them: older than the newest held.
    const freeSecondNear = (at: number) => {
      while (held.some((l) => l.listened_at === at)) at--;
      return at;
    };
    const backdated = await sim.control.addItem<Listen>(login, 'listens', {
      listened_at: freeSecondNear(newest - 2 * HOUR),
    });
    const tooOld = await sim.control.addItem<Listen>(login, 'listens', {
      listened_at: freeSecondNear(newest - 7 * HOUR),
    });
    const before = store.upserts;
    cursor = await connector.sync(ctxFor(store), cursor);
    expect(store.live.has(`media.play_event/${idOf(backdated)}`)).toBe(true);
    // Backdated further than the lookback: missed (docs/sync.md says so).
    expect(store.live.has(`media.play_event/${idOf(tooOld)}`)).toBe(false);
    // The profile and every listen of the lookback's six hours again, the new one among them.
    const inWindow = (await listens()).filter((l) => l.listened_at >= newest - 6 * HOUR).length;
    expect(inWindow).toBeLessThan(held.length / 2);
    expect(store.upserts - before).toBe(1 + inWindow);
    expect(cursor).toEqual({ v: 1, user: login, newest, newestIds: expect.arrayContaining([idOf(held[0]!)]) });
  }, 60_000);

  it('a walk forward bounded in pages keeps what it reached, and the next run goes on from there', async () => {
    const store = new MemoryStore();
    const connector = new ListenBrainzConnector({ pageSize: 50, lookbackSeconds: 0, maxForwardPages: 2 });
    let cursor = await connector.sync(ctxFor(store), null);
    const added: Listen[] = [];
    for (let i = 0; i < 120; i++) added.push(await sim.control.addItem<Listen>(login, 'listens', {}));
    const before = store.count('media.play_event');
    cursor = await connector.sync(ctxFor(store), cursor);
    // Two pages of 50, each starting at the second already held: 49 new listens each, oldest first.
    expect(store.count('media.play_event') - before).toBe(98);
    for (const l of added.slice(0, 98)) expect(store.live.has(`media.play_event/${idOf(l)}`)).toBe(true);
    expect(cursor.forwardFrom).toBe(added[97]!.listened_at - 1);
    expect(cursor.newest).toBe(added[97]!.listened_at);
    cursor = await connector.sync(ctxFor(store), cursor);
    for (const l of added) expect(store.live.has(`media.play_event/${idOf(l)}`)).toBe(true);
    expect(store.count('media.play_event')).toBe((await listens()).length);
    expect(cursor.forwardFrom).toBeUndefined();
    expect(cursor.newest).toBe(added.at(-1)!.listened_at);
  }, 60_000);

  it('walks forward over more new listens than one page holds, in pages of the closest after min_ts', async () => {
    const store = new MemoryStore();
    const connector = new ListenBrainzConnector({ pageSize: 50 });
    let cursor = await connector.sync(ctxFor(store), null);
    const added: Listen[] = [];
    for (let i = 0; i < 120; i++) added.push(await sim.control.addItem<Listen>(login, 'listens', {}));
    cursor = await connector.sync(ctxFor(store), cursor);
    for (const l of added) expect(store.live.has(`media.play_event/${idOf(l)}`)).toBe(true);
    expect(store.count('media.play_event')).toBe((await listens()).length);
    expect(cursor.newest).toBe(added.at(-1)!.listened_at);
  }, 60_000);

  it('a first run bounded in pages leaves the rest of the history to the next run', async () => {
    const store = new MemoryStore();
    const connector = new ListenBrainzConnector({ pageSize: 100, maxBackfillPages: 5 });
    let cursor = await connector.sync(ctxFor(store), null);
    // Five pages of 100; each after the first asks from the edge second again (max_ts = edge + 1)
    // and gets the one listen it already has there back.
    expect(store.count('media.play_event')).toBe(5 * 100 - 4);
    expect(cursor.backfillBefore).toEqual(expect.any(Number));
    for (let run = 0; run < 5 && cursor.backfillBefore !== undefined; run++)
      cursor = await connector.sync(ctxFor(store), cursor);
    expect(cursor.backfillBefore).toBeUndefined();
    expect(store.count('media.play_event')).toBe((await listens()).length);
  }, 60_000);

  it("honours ListenBrainz's rate limit: pauses when the window is spent, waits out 429 + X-RateLimit-Reset-In", async () => {
    const total = (await listens()).length;
    // A window of 3 requests per 2 s: the connector waits for the reset instead of being refused.
    await sim.control.settings({ rateLimit: { limit: 3, windowSeconds: 2 } });
    await sim.control.resetCounters();
    try {
      const paced = new MemoryStore();
      await new ListenBrainzConnector({ pageSize: 300 }).sync(ctxFor(paced), null);
      expect(paced.count('media.play_event')).toBe(total);
      expect((await sim.control.counters()).throttled).toBe(0);
    } finally {
      await sim.control.settings({ rateLimit: { limit: 100_000, windowSeconds: 10 } });
    }
    // A storm: 429 with X-RateLimit-Reset-In and no Retry-After on every other request.
    await sim.control.resetCounters();
    await sim.control.startStorm({ everyNth: 2, retryAfterSeconds: 1, durationSeconds: 4 });
    const started = Date.now();
    const stormed = new MemoryStore();
    try {
      await new ListenBrainzConnector({ pageSize: 300 }).sync(ctxFor(stormed), null);
    } finally {
      await sim.control.stopStorm();
    }
    expect(stormed.count('media.play_event')).toBe(total);
    const { throttled } = await sim.control.counters();
    expect(throttled).toBeGreaterThan(0);
    // Each 429 was waited out for its Reset-In second, not retried at once.
    expect(Date.now() - started).toBeGreaterThanOrEqual(throttled * 1000);
  }, 60_000);

  it('a listen without track_name is a recorded skip and its siblings are stored; one without additional_info is kept', async () => {
    const [broken, bare] = await listens();
    await sim.control.setQuirks(login, {
      listensWithoutTrackName: [broken!.id],
      listensWithoutAdditionalInfo: [bare!.id],
    });
    try {
      const store = new MemoryStore();
      await new ListenBrainzConnector({ pageSize: 100 }).sync(ctxFor(store), null);
      expect(store.skipped).toEqual([
        {
          kind: 'malformed',
          resource: expect.stringMatching(/^\/1\/user\/lena\/listens\?count=100\[0\]$/),
          reason: `listen ${idOf(broken!)} has no track_name`,
        },
      ]);
      expect(store.live.has(`media.play_event/${idOf(broken!)}`)).toBe(false);
      expect(store.count('media.play_event')).toBe((await listens()).length - 1);
      const kept = store.live.get(`media.play_event/${idOf(bare!)}`)!.data;
      expect(() => validateRecord('media.play_event', kept)).not.toThrow();
      for (const field of ['itemDurationMs', 'isrc', 'device']) expect(kept).not.toHaveProperty(field);
    } finally {
      await sim.control.setQuirks(login, {});
    }
  }, 60_000);

  it('a token ListenBrainz calls invalid ends the run with connection_needs_reauth, writing nothing', async () => {
    const store = new MemoryStore();
    await expect(
      new ListenBrainzConnector().sync(ctxFor(store, '00000000-0000-4000-8000-000000000000'), null),
    ).rejects.toMatchObject({ code: 'connection_needs_reauth' });
    expect(store.upserts).toBe(0);
  }, 30_000);
});
