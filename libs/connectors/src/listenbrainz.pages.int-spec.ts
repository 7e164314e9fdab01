import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';

import type { SyncContext } from './connector.js';
import { type LbListen, ListenBrainzConnector, type ListenBrainzCursor } from './listenbrainz.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { type PageAnswer, PageServer, staticTokens } from './testing/page-server.js';

/**
 * The ListenBrainz connector's paging where the simulator's seeded history never goes:
 * several listens in one second split across a page edge, walking back and forward, whole
 * pages within one second, and sources that ignore min_ts / max_ts or send listens without
 * listened_at. Crafted histories are served over real HTTP with ListenBrainz's semantics
 * (exclusive bounds; min_ts answered with the closest listens after it; newest first), and
 * listens of one second come in a different order on every request, as ListenBrainz orders
 * by listened_at alone.
 */

const USER = 'rob';
const listen = (at: number, n: number): LbListen => ({
  listened_at: at,
  recording_msid: `msid-${at}-${n}`,
  track_metadata: { artist_name: 'Artist', track_name: `Track ${at}.${n}` },
});
/** `counts[second]` listens at each second, oldest first (integer keys iterate ascending). */
const history = (counts: Record<number, number>): LbListen[] =>
  Object.entries(counts).flatMap(([at, n]) => Array.from({ length: n }, (_, i) => listen(Number(at), i)));
const idOf = (l: LbListen) => `${l.listened_at as number}:${l.recording_msid as string}`;

/** `GET /1/user/{user}/listens` as ListenBrainz answers it (webserver/views/api.py, timescale_listenstore.fetch_listens). */
function listenBrainz(all: LbListen[]): (url: URL) => PageAnswer | undefined {
  let served = 0;
  return (url) => {
    if (url.pathname === '/1/validate-token') return { body: { code: 200, valid: true, user_name: USER } };
    if (url.pathname !== `/1/user/${USER}/listens`) return undefined;
    const q = (name: string) => (url.searchParams.has(name) ? Number(url.searchParams.get(name)) : undefined);
    const [count, minTs, maxTs] = [q('count') ?? 25, q('min_ts'), q('max_ts')];
    // Ties within a second in another order on each request: no page edge is stable there.
    const shift = served++ % all.length;
    const rotated = [...all.slice(shift), ...all.slice(0, shift)];
    const at = (l: LbListen) => l.listened_at as number;
    const inRange = rotated.filter(
      (l) => (minTs === undefined || at(l) > minTs) && (maxTs === undefined || at(l) < maxTs),
    );
    const page =
      minTs !== undefined
        ? inRange
            .sort((a, b) => at(a) - at(b))
            .slice(0, count)
            .reverse()
        : inRange.sort((a, b) => at(b) - at(a)).slice(0, count);
    const times = all.map(at);
    return {
      body: {
        payload: {
          count: page.length,
          listens: page,
          latest_listen_ts: Math.max(...times),
          oldest_listen_ts: Math.min(...times),
          user_id: USER,
        },
      },
    };
  };
}

describe('ListenBrainzConnector paging within one second', () => {
  const server = new PageServer();
  let store: MemoryStore;
  const ctx = (): SyncContext => ({
    baseUrl: server.url,
    tokens: staticTokens,
    emit: store.apply,
    skip: store.skip,
    http: { maxWaitMs: 1_000, backoffBaseMs: 1 },
  });
  /** The listens requests made, as their bounds (`max_ts=110`, `min_ts=99`; '' for none). */
  const bounds = () =>
    server.requests
      .filter((r) => r.startsWith(`/1/user/${USER}/listens`))
      .map((r) =>
        [...new URL(r, server.url).searchParams]
          .filter(([k]) => k !== 'count')
          .map((kv) => kv.join('='))
          .join('&'),
      );
  const cursorAt = (newest: number, all: LbListen[]): ListenBrainzCursor => ({
    v: 1,
    user: USER,
    newest,
    newestIds: all.filter((l) => l.listened_at === newest).map(idOf),
  });

  beforeAll(() => server.start());
  afterAll(() => server.stop());
  beforeEach(() => {
    store = new MemoryStore();
    server.requests.length = 0;
  });

  it('walking back: a second split across a page edge and whole pages in one second, every listen read once', async () => {
    // Three listens a page: 109 does not fit on the first page, 109 and 108 each fill one.
    const all = history({ 110: 1, 109: 3, 108: 3, 107: 1, 106: 2, 105: 1 });
    server.answer = listenBrainz(all);
    const cursor = await new ListenBrainzConnector({ pageSize: 3 }).sync(ctx(), null);
    expect(new Set(store.of('media.play_event').map((r) => r.externalId))).toEqual(new Set(all.map(idOf)));
    // The profile and each listen once: those already emitted at an edge second are dropped.
    expect(store.upserts).toBe(1 + all.length);
    // From one second past each edge (110: the rest of 109), then strictly before a full second.
    expect(bounds()).toEqual(['', 'max_ts=110', 'max_ts=109', 'max_ts=108', 'max_ts=107']);
    expect(cursor).toEqual({
      v: 1,
      user: USER,
      newest: 110,
      newestIds: all.filter((l) => l.listened_at === 110).map(idOf),
    });
  });

  it('walking forward: a second split across a page edge and whole pages in one second, every new listen read once', async () => {
    const all = history({ 100: 2, 101: 1, 102: 3, 103: 3, 104: 2, 105: 1 });
    server.answer = listenBrainz(all);
    const cursor = await new ListenBrainzConnector({ pageSize: 3, lookbackSeconds: 0 }).sync(ctx(), cursorAt(100, all));
    const fresh = all.filter((l) => (l.listened_at as number) > 100);
    expect(new Set(store.of('media.play_event').map((r) => r.externalId))).toEqual(new Set(fresh.map(idOf)));
    expect(store.upserts).toBe(1 + fresh.length);
    // 101 (the rest of 102 after it), 102 filling a page, then 103 filling one: each stepped past.
    expect(bounds()).toEqual(['min_ts=99', 'min_ts=100', 'min_ts=101', 'min_ts=102', 'min_ts=103', 'min_ts=104']);
    expect(cursor).toEqual({ v: 1, user: USER, newest: 105, newestIds: [idOf(all.at(-1)!)] });
  });

  it('with a lookback, the listens held within it are read again and a backdated one among them is stored', async () => {
    const all = history({ 96: 1, 97: 2, 98: 1, 100: 2 });
    // Stored after the last run, with a listened_at before the newest held.
    const backdated = listen(99, 0);
    server.answer = listenBrainz([...all, backdated]);
    const cursor = await new ListenBrainzConnector({ pageSize: 3, lookbackSeconds: 3 }).sync(ctx(), cursorAt(100, all));
    expect(store.live.has(`media.play_event/${idOf(backdated)}`)).toBe(true);
    // From 97 (100 − 3) on: 97, 97, 98, 99 and 100, 100; 96 is before the lookback.
    expect(store.upserts).toBe(1 + 6);
    expect(bounds()[0]).toBe('min_ts=96');
    expect(cursor.newest).toBe(100);
  });

  it('a source that ignores min_ts: the walk forward stops once a page does not move it on', async () => {
    const all = history({ 100: 1, 101: 1, 102: 1, 103: 1, 104: 1, 105: 1 });
    const honest = listenBrainz(all);
    // Always the newest page, whatever min_ts says.
    server.answer = (url) => {
      url.searchParams.delete('min_ts');
      return honest(url);
    };
    const cursor = await new ListenBrainzConnector({ pageSize: 3, lookbackSeconds: 0 }).sync(ctx(), cursorAt(100, all));
    expect(bounds()).toEqual(['min_ts=99', 'min_ts=104', 'min_ts=105']);
    expect(store.count('media.play_event')).toBe(3);
    expect(cursor.forwardFrom).toBeUndefined();
  });

  it('a full page of listens without listened_at is skipped item by item, and the walk forward stops', async () => {
    const nameless = Array.from({ length: 3 }, (_, i) => ({ ...listen(0, i), listened_at: undefined }));
    server.answer = (url) =>
      url.pathname === '/1/validate-token'
        ? { body: { valid: true, user_name: USER } }
        : { body: { payload: { count: 3, listens: nameless } } };
    const cursor = await new ListenBrainzConnector({ pageSize: 3, lookbackSeconds: 0 }).sync(ctx(), {
      v: 1,
      user: USER,
      newest: 100,
      newestIds: [],
    });
    expect(bounds()).toEqual(['min_ts=99']);
    expect(store.skipped.map((s) => s.reason)).toEqual(
      Array(3).fill('the listen has no listened_at or recording_msid'),
    );
    expect(cursor).toEqual({ v: 1, user: USER, newest: 100, newestIds: [] });
  });

  it('a source that ignores max_ts: the walk back stops and leaves the rest to the next run', async () => {
    const all = history({ 110: 1, 109: 1, 108: 1, 107: 1, 106: 1 });
    const honest = listenBrainz(all);
    server.answer = (url) => {
      url.searchParams.delete('max_ts');
      return honest(url);
    };
    const cursor = await new ListenBrainzConnector({ pageSize: 3 }).sync(ctx(), null);
    expect(bounds()).toEqual(['', 'max_ts=109', 'max_ts=108']);
    expect(cursor.backfillBefore).toBe(107);
  });
});
