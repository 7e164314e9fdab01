import { validateRecord } from '@context-gateway/record-catalog';
import { spotifySchemas as schemas } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import type { NormalizedRecord } from './connector.js';
import { SpotifyConnector, type SpotifyCursor, spotifyNormalize } from './spotify.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { PageServer } from './testing/page-server.js';

/**
 * Property: any pages valid under Spotify's Web API description (the simulator's schemas,
 * written from it) become, item by item, exactly one catalog-valid record or exactly one
 * recorded skip naming the item — never a crash, never a lost sibling. The pages are
 * served over real HTTP with real `next` links, so the connector runs as against Spotify.
 * Every generated page is first checked against the schema: the generators stay inside it.
 * Then the incremental runs, with the returned cursor: the same account again (playlists
 * re-read only when their snapshot_id changed or they have none; plays asked for `after` the
 * newest held), and the account changed — the store ends equal to the account, and nothing
 * that exists is ever tombstoned.
 */

// An empty or non-numeric PROPERTY_RUNS must not mean zero runs (a test that checks nothing).
const NUM_RUNS = Math.max(1, Number(process.env.PROPERTY_RUNS) || 60);

// ---- generators, one per schema of spotify.schemas.ts ----
const id = fc.stringMatching(/^[0-9A-Za-z]{22}$/);
/** Any text, the empty string and non-ASCII included. */
const text = fc.string({ maxLength: 12, unit: 'grapheme' });
const time = fc
  .date({ min: new Date('2008-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const url = id.map((i) => `https://open.spotify.com/x/${i}`);
const externalUrls = fc.record({ spotify: url }, { requiredKeys: [] });
const image = fc.record({
  url,
  height: fc.option(fc.nat(3000), { nil: null }),
  width: fc.option(fc.nat(3000), { nil: null }),
});
const artist = fc.record(
  {
    id: fc.oneof(id, fc.constant(null)),
    name: text,
    type: fc.constant('artist' as const),
    // Null for a local file's artist.
    uri: fc.option(fc.string(), { nil: null }),
    external_urls: externalUrls,
  },
  { requiredKeys: [] },
);
const album = fc.record({
  album_type: fc.constantFrom('album', 'single', 'compilation'),
  total_tracks: fc.nat(40),
  available_markets: fc.array(fc.constantFrom('DE', 'US', 'GB'), { maxLength: 2 }),
  external_urls: externalUrls,
  href: fc.string(),
  id: fc.oneof(id, fc.constant('')),
  images: fc.array(image, { maxLength: 2 }),
  name: text,
  release_date: fc.constantFrom('1981', '1981-12', '1981-12-07'),
  release_date_precision: fc.constantFrom('year', 'month', 'day'),
  type: fc.constant('album' as const),
  uri: fc.string(),
  artists: fc.array(artist, { maxLength: 2 }),
});
/** A local file's album, as Spotify's "Local Files" guide shows it: null ids, links and dates. */
const localAlbum = fc.record({
  album_type: fc.constant(null),
  available_markets: fc.constant([]),
  external_urls: fc.constant({}),
  href: fc.constant(null),
  id: fc.constant(null),
  images: fc.constant([]),
  name: text,
  release_date: fc.constant(null),
  release_date_precision: fc.constant(null),
  type: fc.constant('album' as const),
  uri: fc.constant(null),
  artists: fc.array(artist, { maxLength: 2 }),
});
/** An ISRC as Spotify prints it, one with hyphens or lower case, or not one at all. */
const isrc = fc.oneof(fc.stringMatching(/^[A-Z]{2}[A-Z0-9]{3}\d{7}$/), fc.constant('us-rc1-76-07839'), fc.string());
const track = fc.record(
  {
    album: fc.oneof(album, album, localAlbum),
    artists: fc.array(artist, { maxLength: 3 }),
    duration_ms: fc.integer({ min: -1, max: 10_000_000 }),
    external_ids: fc.record({ isrc }, { requiredKeys: [] }),
    external_urls: externalUrls,
    href: fc.option(fc.string(), { nil: null }),
    id: fc.oneof(id, id, id, fc.constant(null), fc.constant('')),
    is_local: fc.boolean(),
    name: text,
    type: fc.constant('track' as const),
    uri: fc.oneof(
      id.map((i) => `spotify:track:${i}`),
      text.map((t) => `spotify:local:${encodeURIComponent(t)}:::180`),
      fc.constant(''),
    ),
  },
  { requiredKeys: [] },
);
const show = fc.record({
  available_markets: fc.constant([]),
  copyrights: fc.constant([]),
  description: text,
  html_description: text,
  explicit: fc.boolean(),
  external_urls: externalUrls,
  href: fc.string(),
  id: fc.oneof(id, fc.constant('')),
  images: fc.array(image, { maxLength: 1 }),
  is_externally_hosted: fc.boolean(),
  languages: fc.constant(['en']),
  media_type: fc.constantFrom('audio', 'mixed'),
  name: text,
  publisher: text,
  type: fc.constant('show' as const),
  uri: fc.string(),
  total_episodes: fc.nat(500),
});
const episode = fc.record({
  audio_preview_url: fc.constant(null),
  description: text,
  html_description: text,
  duration_ms: fc.nat(10_000_000),
  explicit: fc.boolean(),
  external_urls: externalUrls,
  href: fc.string(),
  id: fc.oneof(id, fc.constant('')),
  images: fc.constant([]),
  is_externally_hosted: fc.boolean(),
  is_playable: fc.boolean(),
  languages: fc.constant(['en']),
  name: text,
  release_date: fc.constant('2024-01-02'),
  release_date_precision: fc.constant('day' as const),
  type: fc.constant('episode' as const),
  uri: fc.string(),
  show,
});
/** A playlist entry in one generation of field names (`track`, `item`, both, or neither). */
const entry = fc
  .tuple(
    fc.oneof(track, track, episode, fc.constant(null)),
    fc.constantFrom('old', 'new', 'both', 'none'),
    fc.record(
      { added_at: fc.option(time, { nil: null }), is_local: fc.boolean(), added_by: fc.constant(null) },
      { requiredKeys: [] },
    ),
  )
  .map(([content, generation, rest]) => ({
    ...rest,
    ...(generation === 'old' || generation === 'both' ? { track: content } : {}),
    ...(generation === 'new' || generation === 'both' ? { item: content } : {}),
  }));
const playlist = fc.record(
  {
    collaborative: fc.boolean(),
    description: fc.option(text, { nil: null }),
    external_urls: externalUrls,
    id: fc.oneof(id, id, id, id, fc.constant('')),
    images: fc.option(fc.array(image, { maxLength: 2 }), { nil: null }),
    name: fc.option(text, { nil: null }),
    owner: fc.record({ id: fc.string(), display_name: fc.option(text, { nil: null }) }, { requiredKeys: [] }),
    public: fc.option(fc.boolean(), { nil: null }),
    snapshot_id: fc.string(),
    type: fc.constant('playlist'),
  },
  { requiredKeys: [] },
);
/** One /me/playlists entry (or `null`) with its entries, which link it carries, and whether they answer 403. */
const playlistModel = fc.record({
  playlist: fc.option(playlist, { nil: null, freq: 6 }),
  ref: fc.constantFrom('items', 'tracks', 'both', 'none'),
  entries: fc.array(entry, { maxLength: 5 }),
  forbidden: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
});
const saved = fc.record({ added_at: time, track }, { requiredKeys: [] });
const play = fc.record(
  {
    track,
    played_at: time,
    context: fc.option(fc.record({ type: fc.constant('playlist'), uri: fc.string() }), { nil: null }),
  },
  { requiredKeys: [] },
);

/** Keeps the first of items sharing a key (the source lists an id once per listing). */
const uniqueBy = <T>(items: T[], key: (t: T) => string | undefined) => {
  const seen = new Set<string>();
  return items.filter((t) => {
    const k = key(t);
    if (k === undefined) return true;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
};

const account = fc.record({
  pageSize: fc.integer({ min: 1, max: 4 }),
  playlists: fc
    .array(playlistModel, { maxLength: 6 })
    .map((ps) => uniqueBy(ps, (m) => (m.playlist?.id ? m.playlist.id : undefined))),
  saved: fc.array(saved, { maxLength: 6 }).map((s) => uniqueBy(s, (x) => x.track?.id ?? undefined)),
  plays: fc
    .array(play, { maxLength: 6 })
    .map((p) => newestFirst(uniqueBy(p, (x) => `${x.track?.id ?? '?'}@${x.played_at ?? '?'}`))),
});
type Account = typeof account extends fc.Arbitrary<infer A> ? A : never;
type Entry = typeof entry extends fc.Arbitrary<infer E> ? E : never;
type Play = typeof play extends fc.Arbitrary<infer P> ? P : never;

/** A play's time in Unix ms (recently-played's cursor unit), NaN when it has none. */
const playTime = (p: Play) => (p.played_at ? Date.parse(p.played_at) : NaN);
/** Recently played lists newest first; a play without a time (outside the description) last. */
function newestFirst(plays: Play[]): Play[] {
  const t = (p: Play) => (Number.isNaN(playTime(p)) ? -Infinity : playTime(p));
  return [...plays].sort((x, y) => t(y) - t(x));
}

/**
 * The account changed between runs: playlists, saved tracks kept, dropped or edited, new ones
 * at the head; new plays after the newest. An edited playlist gets new entries and a new
 * snapshot_id (as Spotify gives it) — unless it has none, when nothing but re-reading tells.
 */
const accountAndChange = account.chain((a) => {
  const fates = (n: number) => fc.array(fc.constantFrom('keep', 'drop', 'edit'), { minLength: n, maxLength: n });
  const newest = Math.max(Date.parse('2030-01-01T00:00:00Z'), ...a.plays.map(playTime).filter((t) => !Number.isNaN(t)));
  return fc
    .record({
      pageSize: fc.integer({ min: 1, max: 4 }),
      playlistFates: fates(a.playlists.length),
      edits: fc.array(fc.record({ entries: fc.array(entry, { maxLength: 5 }), name: text }), {
        minLength: a.playlists.length,
        maxLength: a.playlists.length,
      }),
      newPlaylists: fc.array(playlistModel, { maxLength: 2 }),
      savedFates: fates(a.saved.length),
      newSaved: fc.array(saved, { maxLength: 3 }),
      newPlays: fc.array(play, { maxLength: 3 }),
    })
    .map((c) => {
      const playlists = a.playlists.flatMap((m, i) => {
        if (c.playlistFates[i] === 'drop') return [];
        if (c.playlistFates[i] === 'keep' || !m.playlist) return [m];
        const snapshot = m.playlist.snapshot_id;
        return [
          {
            ...m,
            entries: c.edits[i]!.entries,
            playlist: {
              ...m.playlist,
              name: c.edits[i]!.name,
              ...(snapshot !== undefined ? { snapshot_id: `${snapshot}~` } : {}),
            },
          },
        ];
      });
      const savedNow = a.saved.flatMap((x, i) => {
        if (c.savedFates[i] === 'drop') return [];
        if (c.savedFates[i] === 'keep' || !x.added_at) return [x];
        return [{ ...x, added_at: new Date(Date.parse(x.added_at) + 1000).toISOString() }];
      });
      const b: Account = {
        pageSize: c.pageSize,
        playlists: uniqueBy([...c.newPlaylists, ...playlists], (m) => (m.playlist?.id ? m.playlist.id : undefined)),
        saved: uniqueBy([...c.newSaved, ...savedNow], (x) => x.track?.id ?? undefined),
        // Plays are never removed; new ones come after the newest (recently-played's `after`).
        plays: newestFirst([
          ...c.newPlays.map((p, k) => ({ ...p, played_at: new Date(newest + 1000 * (k + 1)).toISOString() })),
          ...a.plays,
        ]),
      };
      return { a, b };
    });
});

/** What identifies each item to the connector (what a skip is for when it is missing). */
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';
function entryKey(e: Entry): string | undefined {
  const content = ('item' in e ? e.item : undefined) ?? ('track' in e ? e.track : undefined);
  if (!content) return undefined;
  const local = e.is_local === true || ('is_local' in content && content.is_local === true);
  return nonEmpty(local ? content.uri : content.id) ? 'ok' : undefined;
}

describe('SpotifyConnector on any pages valid under the Web API description', () => {
  const server = new PageServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  /** The account's pages over HTTP: offset paging with `next` links, `pageSize` items a page. */
  function serve(a: Account) {
    const size = a.pageSize;
    const paged = (path: string, all: unknown[], u: URL) => {
      const offset = Number(u.searchParams.get('offset') ?? 0);
      const at = (o: number) => `${server.url}${path}?offset=${o}&limit=${size}`;
      return {
        body: {
          href: at(offset),
          items: all.slice(offset, offset + size),
          limit: size,
          next: offset + size < all.length ? at(offset + size) : null,
          offset,
          previous: offset > 0 ? at(Math.max(0, offset - size)) : null,
          total: all.length,
        },
      };
    };
    const listed = a.playlists.map((m) => {
      if (!m.playlist) return null;
      const pid = m.playlist.id ?? 'none';
      const ref = (suffix: string) => ({ href: `${server.url}/playlists/${pid}/${suffix}`, total: m.entries.length });
      return {
        ...m.playlist,
        ...(m.ref === 'items' || m.ref === 'both' ? { items: ref('items') } : {}),
        ...(m.ref === 'tracks' || m.ref === 'both' ? { tracks: ref('tracks') } : {}),
      };
    });
    server.answer = (u) => {
      if (u.pathname === '/me') return { body: { id: 'listener', display_name: null, type: 'user' } };
      if (u.pathname === '/me/playlists') return paged(u.pathname, listed, u);
      if (u.pathname === '/me/tracks') return paged(u.pathname, a.saved, u);
      if (u.pathname === '/me/player/recently-played') {
        // Newest first; `after=T`: only plays strictly after T (in Unix ms).
        const after = u.searchParams.get('after');
        const items = after === null ? a.plays : a.plays.filter((p) => playTime(p) > Number(after));
        const times = items.map(playTime).filter((t) => !Number.isNaN(t));
        return {
          body: {
            href: u.toString(),
            limit: 50,
            next: null,
            cursors: times.length ? { after: String(Math.max(...times)), before: String(Math.min(...times)) } : null,
            items,
          },
        };
      }
      const m = /^\/playlists\/([^/]+)\/(items|tracks)$/.exec(u.pathname);
      const model = m && a.playlists.find((p) => p.playlist?.id === m[1]);
      if (model?.forbidden) return { status: 403, body: { error: { status: 403, message: 'Forbidden' } } };
      if (model) return paged(u.pathname, model.entries, u);
      return undefined;
    };
    return { size, listed };
  }

  /** An item as the connector receives it: through JSON. */
  const wire = (item: unknown) => JSON.parse(JSON.stringify(item)) as never;
  /** What the store holds for an account once synced (besides the profile): every readable item as it is now. */
  function expected(x: Account, listed: ReturnType<typeof serve>['listed']): Map<string, NormalizedRecord> {
    const out = new Map<string, NormalizedRecord>();
    const add = (make: () => NormalizedRecord) => {
      try {
        const r = make();
        out.set(`${r.type}/${r.externalId}`, r);
      } catch {
        // Unreadable: a recorded skip, not a record.
      }
    };
    x.playlists.forEach((m, i) => {
      const pid = m.playlist?.id;
      if (!nonEmpty(pid)) return;
      add(() => spotifyNormalize.playlist(wire(listed[i])));
      if (!m.forbidden) m.entries.forEach((e, pos) => add(() => spotifyNormalize.playlistItem(pid, pos, wire(e))));
    });
    for (const x1 of x.saved) add(() => spotifyNormalize.savedTrack(wire(x1)));
    for (const p of x.plays) if (!Number.isNaN(playTime(p))) add(() => spotifyNormalize.play(wire(p)));
    return out;
  }

  it('every generated item is one valid record or one recorded skip naming it; incremental runs keep the store equal', async () => {
    await fc.assert(
      fc.asyncProperty(accountAndChange, async ({ a, b }) => {
        const { size, listed } = serve(a);
        // The generators stay inside the description's schemas.
        const page = (items: unknown[]) => ({
          href: '',
          items,
          limit: 1,
          next: null,
          offset: 0,
          previous: null,
          total: 0,
        });
        expect(schemas.spotifyPlaylistsPage.safeParse(page(listed)).error).toBeUndefined();
        for (const m of a.playlists)
          expect(schemas.spotifyPlaylistItemsPage.safeParse(page(m.entries)).error).toBeUndefined();
        expect(schemas.spotifySavedTracksPage.safeParse(page(a.saved)).error).toBeUndefined();
        expect(schemas.spotifyRecentlyPlayedPage.safeParse({ items: a.plays }).error).toBeUndefined();

        const store = new MemoryStore();
        const connector = new SpotifyConnector();
        const sync = (cursor: SpotifyCursor | null) => connector.sync(server.context(store), cursor);
        let cursor = await sync(null);

        for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
        const skipsNamed = (resource: string) => store.skipped.filter((s) => s.resource === resource).length;
        /** The resource a listing's skip names: the page-local index and the page's URL as asked. */
        const listingSkip = (path: string, first: string, g: number) => {
          const offset = g - (g % size);
          return `${path}[${g % size}] (${offset === 0 ? first : `${server.url}${path}?offset=${offset}&limit=${size}`})`;
        };
        let expectedSkips = 0;
        const expectOne = (readable: boolean, key: string, skip: string) => {
          if (readable) expect({ key, stored: store.live.has(key) }).toEqual({ key, stored: true });
          else {
            expect({ skip, times: skipsNamed(skip) }).toEqual({ skip, times: 1 });
            expectedSkips++;
          }
        };

        a.playlists.forEach((m, g) => {
          const pid = m.playlist?.id;
          expectOne(nonEmpty(pid), `media.playlist/${pid}`, listingSkip('/me/playlists', '/me/playlists?limit=50', g));
          if (!nonEmpty(pid)) return;
          if (m.forbidden) {
            expect(skipsNamed(`/playlists/${pid}/items`)).toBe(1);
            expectedSkips++;
            return;
          }
          m.entries.forEach((e, pos) => {
            expectOne(
              entryKey(e) !== undefined,
              `media.playlist_item/${pid}:${pos}`,
              `/playlists/${pid}/items[${pos}]`,
            );
          });
        });
        a.saved.forEach((s, g) =>
          expectOne(
            nonEmpty(s.track?.id),
            `media.track/${s.track?.id}`,
            listingSkip('/me/tracks', '/me/tracks?limit=50', g),
          ),
        );
        a.plays.forEach((p, g) =>
          expectOne(
            nonEmpty(p.track?.id) && p.played_at !== undefined,
            `media.play_event/${p.track?.id}@${p.played_at}`,
            `/me/player/recently-played[${g}]`,
          ),
        );
        // Nothing else: no record and no skip the generated items do not account for.
        expect(store.skipped).toHaveLength(expectedSkips);
        const readable = a.playlists.filter((m) => nonEmpty(m.playlist?.id));
        expect(store.live.size).toBe(
          1 +
            readable.length +
            readable
              .filter((m) => !m.forbidden)
              .reduce((n, m) => n + m.entries.filter((e) => entryKey(e) !== undefined).length, 0) +
            a.saved.filter((s) => nonEmpty(s.track?.id)).length +
            a.plays.filter((p) => nonEmpty(p.track?.id) && p.played_at !== undefined).length,
        );

        /** The store holds exactly the account (and the profile), each item as it is now. */
        const holds = (x: Account, xListed: typeof listed) => {
          const want = expected(x, xListed);
          expect([...store.live.keys()].filter((k) => k !== 'profile/listener').sort()).toEqual(
            [...want.keys()].sort(),
          );
          for (const [key, record] of want) expect(store.live.get(key)).toEqual(record);
        };
        holds(a, listed);

        // The same account again: playlists with an unchanged snapshot_id are not re-read, plays
        // are asked for `after` the newest held; the store is unchanged, nothing tombstoned.
        const requests = server.requests.length;
        cursor = await sync(cursor);
        const asked = server.requests.slice(requests);
        expect(store.tombstones.size).toBe(0);
        holds(a, listed);
        expect(asked.some((r) => r.startsWith('/me/player/recently-played?') && r.includes('after='))).toBe(
          a.plays.some((p) => !Number.isNaN(playTime(p))),
        );
        for (const m of a.playlists) {
          const pid = m.playlist?.id;
          if (!nonEmpty(pid) || m.forbidden) continue;
          const reread = asked.some((r) => r.startsWith(`/playlists/${pid}/`));
          expect({ pid, snapshot: m.playlist?.snapshot_id, reread }).toEqual({
            pid,
            snapshot: m.playlist?.snapshot_id,
            reread: !nonEmpty(m.playlist?.snapshot_id),
          });
        }

        // Changed: what exists is never tombstoned; a second run tombstones what is really gone.
        const changed = serve(b);
        cursor = await sync(cursor);
        const live = expected(b, changed.listed);
        for (const key of store.tombstones) expect({ key, live: live.has(key) }).toEqual({ key, live: false });
        for (const key of live.keys()) expect({ key, stored: store.live.has(key) }).toEqual({ key, stored: true });
        cursor = await sync(cursor);
        holds(b, changed.listed);
        expect([cursor.playlists?.missed, cursor.saved?.missed]).toEqual([undefined, undefined]);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 60_000);

  it('a playlist listed without a snapshot_id is re-read every run: changed entries are not missed', async () => {
    const trackNamed = (name: string) => ({ id: `${name}`.padEnd(22, '0'), name, type: 'track', is_local: false });
    const model = (names: string[]): Account => ({
      pageSize: 2,
      playlists: [
        {
          playlist: { id: 'nosnapshot0000000000000', name: 'Mix', type: 'playlist' },
          ref: 'items',
          entries: names.map((n) => ({ added_at: null, track: trackNamed(n) })) as Entry[],
          forbidden: false,
        },
      ],
      saved: [],
      plays: [],
    });
    const store = new MemoryStore();
    const ctx = server.context(store);
    serve(model(['first', 'second', 'third']));
    const cursor = await new SpotifyConnector().sync(ctx, null);
    serve(model(['replaced', 'second']));
    await new SpotifyConnector().sync(ctx, cursor);
    const entries = store.of('media.playlist_item').map((r) => [r.externalId, r.data.title]);
    expect(entries.sort()).toEqual([
      ['nosnapshot0000000000000:0', 'replaced'],
      ['nosnapshot0000000000000:1', 'second'],
    ]);
    expect(store.tombstones).toEqual(new Set(['media.playlist_item/nosnapshot0000000000000:2']));
  }, 30_000);
});
