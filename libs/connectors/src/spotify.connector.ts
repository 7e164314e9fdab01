import { AppError } from '@context-gateway/errors';

import { compact } from './compact.js';
import type { Connector, NormalizedRecord, SyncContext } from './connector.js';
import { type CollectionState, syncCollection } from './paged-collection.js';
import { SourceHttp } from './source-http.js';

/** The parts of Spotify's Web API objects we read (https://developer.spotify.com/documentation/web-api). */
interface SpArtist {
  id?: string;
  name: string;
}
/** A track or, in playlists and recently played, an episode (`type: 'episode'`, with `show`). */
interface SpTrack {
  /** Null for a local file (`is_local`), which has only a `spotify:local:…` URI. */
  id: string | null;
  name: string;
  artists?: SpArtist[];
  /** A local file's album has null ids (Spotify's "Local Files" guide). */
  album?: { id?: string | null; name?: string };
  show?: { id?: string; name?: string; publisher?: string };
  duration_ms?: number;
  uri?: string;
  type?: string;
  is_local?: boolean;
  external_ids?: { isrc?: string | null } | null;
  external_urls?: { spotify?: string };
}
interface SpUser {
  id: string;
  display_name?: string | null;
  email?: string | null;
  country?: string;
  product?: string;
  images?: { url: string }[];
  external_urls?: { spotify?: string };
}
interface SpPlaylist {
  id: string;
  name: string;
  description?: string | null;
  public?: boolean | null;
  collaborative?: boolean;
  /** Nothing in SimplifiedPlaylistObject is `required`: a playlist may come without one. */
  snapshot_id?: string;
  owner?: { id: string; display_name?: string | null };
  tracks?: { href?: string; total?: number };
  items?: { href?: string; total?: number };
  external_urls?: { spotify?: string };
}
interface SpPlaylistItem {
  added_at?: string | null;
  is_local?: boolean;
  track?: SpTrack | null;
  item?: SpTrack | null;
}
interface SpSaved {
  added_at: string;
  track: SpTrack;
}
interface SpPlay {
  played_at: string;
  track: SpTrack;
  context?: { type?: string; uri?: string } | null;
}
interface SpPage<T> {
  items: T[];
  next: string | null;
  cursors?: { after?: string | null; before?: string | null } | null;
}

export interface SpotifyCursor {
  v: 1;
  playlists?: CollectionState;
  /**
   * Per playlist: the snapshot whose items we hold (none when the listing named none), and
   * their ids. A changed snapshot is re-read; so is a playlist listed without one.
   */
  playlistItems?: Record<string, { snapshotId?: string; ids: string[] }>;
  saved?: CollectionState;
  /** recently-played `after` cursor (Unix ms of the newest play we have). */
  playedAfter?: string;
}

const isEpisode = (t: SpTrack) => t.type === 'episode';
/**
 * Who made the item, as one list so names and ids stay in step: a track's artists with a
 * name, or an episode's show (named by its publisher when it has no name).
 */
function people(t: SpTrack): { name: string; id: string | undefined }[] {
  const named = (name: unknown): name is string => typeof name === 'string' && name !== '';
  const id = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  if (isEpisode(t)) {
    const name = named(t.show?.name) ? t.show.name : t.show?.publisher;
    return named(name) ? [{ name, id: id(t.show?.id) }] : [];
  }
  return (t.artists ?? []).flatMap((a) => (a && named(a.name) ? [{ name: a.name, id: id(a.id) }] : []));
}
const creators = (t: SpTrack): string[] => people(t).map((p) => p.name);
/** The creators' ids, same order, only when every creator has one. */
function creatorIds(t: SpTrack): string[] | undefined {
  const ids = people(t).map((p) => p.id);
  return ids.length > 0 && ids.every((i) => i !== undefined) ? ids : undefined;
}
/** Album (track) or show (episode) of an item. */
const collection = (t: SpTrack) => (isEpisode(t) ? t.show?.name : t.album?.name) || undefined;
const collectionId = (t: SpTrack) => (isEpisode(t) ? t.show?.id : t.album?.id) || undefined;
/** Spotify's episodes (podcasts) come through the same endpoints as tracks. */
const kind = (t: SpTrack) => (isEpisode(t) ? 'podcast' : 'music');
const length = (t: SpTrack) =>
  typeof t.duration_ms === 'number' && Number.isInteger(t.duration_ms) && t.duration_ms >= 0
    ? t.duration_ms
    : undefined;

/** An ISRC as the catalog stores it (upper case, no hyphens), or nothing when Spotify's is not one. */
export function normalizeIsrc(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const isrc = value.replace(/[-\s]/g, '').toUpperCase();
  return /^[A-Z]{2}[A-Z0-9]{3}\d{7}$/.test(isrc) ? isrc : undefined;
}

/** What every record about an item carries of it (tracks, playlist entries, plays). */
const itemFacts = (t: SpTrack) => ({
  creators: creators(t),
  creatorIds: creatorIds(t),
  collection: collection(t),
  collectionId: collectionId(t),
  isrc: normalizeIsrc(t.external_ids?.isrc),
});

/** Thrown for an entry the source sent without what identifies it; the run records it as a skip. */
class UnreadableItem extends Error {}

/** A playlist that names its id (the description marks none of its fields required). */
const hasId = (p: SpPlaylist | null): p is SpPlaylist =>
  p !== null && typeof p === 'object' && typeof p.id === 'string' && p.id !== '';
/**
 * A track's name, which the catalog requires even when empty: set after compact() (which
 * drops ''), and '' when the source sent none (the description does not promise one).
 */
const titleOf = (t: SpTrack) => ({ title: typeof t.name === 'string' ? t.name : '' });

/** Spotify objects → the record catalog's shapes (libs/record-catalog). */
export const spotifyNormalize = {
  profile: (u: SpUser): NormalizedRecord => {
    if (typeof u.id !== 'string' || u.id === '') throw new UnreadableItem('the profile has no id');
    return {
      type: 'profile',
      externalId: u.id,
      data: compact({
        source: 'spotify',
        id: u.id,
        displayName: u.display_name,
        handle: u.id,
        email: u.email,
        url: u.external_urls?.spotify,
        imageUrl: u.images?.[0]?.url,
        country: u.country,
      }),
    };
  },
  playlist: (p: SpPlaylist): NormalizedRecord => {
    if (!hasId(p)) throw new UnreadableItem('the playlist has no id');
    return {
      type: 'media.playlist',
      externalId: p.id,
      data: {
        // Required by the catalog even when empty, so set after compact(), which drops ''.
        ...compact({
          source: 'spotify',
          id: p.id,
          description: p.description,
          ownerId: p.owner?.id,
          public: p.public,
          itemCount: (p.items ?? p.tracks)?.total,
          url: p.external_urls?.spotify,
        }),
        // Spotify sends null names for some playlists; the catalog wants a string.
        name: typeof p.name === 'string' ? p.name : '',
      },
    };
  },
  /**
   * One playlist entry with a snapshot of what it points at. A local file (`is_local`) has no
   * Spotify id, only its `spotify:local:…` URI, which stands in as its `trackId`. Throws
   * UnreadableItem for an entry that points at nothing (a track since removed from Spotify).
   */
  playlistItem: (playlistId: string, position: number, i: SpPlaylistItem): NormalizedRecord => {
    // `item` is the newer name, `track` the deprecated one; either may be the only one sent.
    const t = i.item ?? i.track;
    if (!t || typeof t !== 'object') throw new UnreadableItem('the entry points at nothing (removed from Spotify)');
    const local = i.is_local === true || t.is_local === true;
    const trackId = local ? t.uri : t.id;
    if (typeof trackId !== 'string' || trackId === '')
      throw new UnreadableItem(local ? 'a local file without a URI' : 'the entry has no id');
    const addedAt = validTime(i.added_at);
    return {
      type: 'media.playlist_item',
      externalId: `${playlistId}:${position}`,
      ...(addedAt ? { occurredAt: addedAt } : {}),
      data: compact({
        source: 'spotify',
        playlistId,
        trackId,
        position,
        title: typeof t.name === 'string' ? t.name : undefined,
        addedAt,
        itemKind: local ? 'local' : isEpisode(t) ? 'episode' : 'track',
        ...itemFacts(t),
        itemDurationMs: length(t),
      }),
    };
  },
  savedTrack: (s: SpSaved): NormalizedRecord => {
    const t = s.track;
    if (!t || typeof t !== 'object' || typeof t.id !== 'string' || t.id === '')
      throw new UnreadableItem('the saved entry names no track');
    return {
      type: 'media.track',
      externalId: t.id,
      occurredAt: s.added_at,
      data: {
        ...compact({
          source: 'spotify',
          id: t.id,
          kind: kind(t),
          ...itemFacts(t),
          // A saved track's own length (media.track has no play, so nothing else it could mean).
          durationMs: length(t),
          url: t.external_urls?.spotify,
          savedAt: s.added_at,
        }),
        ...titleOf(t),
      },
    };
  },
  /**
   * The same media.play_event a Netflix viewing is: what was played and when. `durationMs`
   * means time played; recently-played gives `played_at` only (not how long), so it is left
   * out, and the track's length goes to `itemDurationMs`.
   */
  play: (p: SpPlay): NormalizedRecord => {
    const t = p.track;
    if (!t || typeof t !== 'object' || typeof t.id !== 'string' || t.id === '')
      throw new UnreadableItem('the play names no track');
    return {
      type: 'media.play_event',
      externalId: `${t.id}@${p.played_at}`,
      occurredAt: p.played_at,
      data: {
        ...compact({
          source: 'spotify',
          trackId: t.id,
          kind: kind(t),
          playedAt: p.played_at,
          ...itemFacts(t),
          itemDurationMs: length(t),
          supplemental: false,
        }),
        ...titleOf(t),
      },
    };
  },
};

const pageItems = <T>(body: unknown): (T | null)[] => (body as SpPage<T | null> | undefined)?.items ?? [];
const pageNext = (body: unknown) => (body as SpPage<unknown> | undefined)?.next ?? undefined;

/**
 * Spotify: profile, playlists with their items (re-read only when a playlist's snapshot_id
 * changed), saved tracks, and recently played followed forward with its `after` cursor.
 * Spotify throttles with 429 + Retry-After, which SourceHttp honours.
 */
export class SpotifyConnector implements Connector {
  readonly integration = 'spotify';
  readonly produces = ['profile', 'media.playlist', 'media.playlist_item', 'media.track', 'media.play_event'] as const;

  async sync(ctx: SyncContext, cursor: unknown): Promise<SpotifyCursor> {
    const prev = isSpotifyCursor(cursor) ? cursor : undefined;
    const http = new SourceHttp(ctx.baseUrl, ctx.tokens, ctx.http, ctx.signal);
    const next: SpotifyCursor = { v: 1 };

    const me = await http.get<SpUser>('/me');
    if (me.body) await emitProfile(ctx, me.body);

    // Playlists: listing them also tells us each one's snapshot, so unchanged playlists cost nothing more.
    // By id: the listing may be walked twice in one run (syncCollection), the later answer wins.
    const listed = new Map<string, SpPlaylist>();
    next.playlists = (
      await syncCollection(
        http,
        ctx,
        {
          firstPage: '/me/playlists?limit=50',
          type: 'media.playlist',
          conditional: false,
          items: (body) => {
            const items = pageItems<SpPlaylist>(body);
            // Only a playlist with an id has items to read; one without is a recorded skip.
            for (const p of items.filter(hasId)) listed.set(p.id, p);
            return items;
          },
          next: pageNext,
          resource: '/me/playlists',
          normalize: spotifyNormalize.playlist,
        },
        prev?.playlists,
      )
    ).state;

    // A playlist the listing missed once is not gone yet (syncCollection): its items stay too.
    const pendingPlaylists = new Set(next.playlists.missed ?? []);
    const prevItems = prev?.playlistItems ?? {};
    const playlistItems: NonNullable<SpotifyCursor['playlistItems']> = {};
    next.playlistItems = playlistItems;
    for (const p of listed.values()) {
      const known = prevItems[p.id];
      // Without a snapshot id nothing tells an unchanged playlist from a changed one: re-read it.
      const snapshotId = typeof p.snapshot_id === 'string' && p.snapshot_id !== '' ? p.snapshot_id : undefined;
      if (known && snapshotId !== undefined && known.snapshotId === snapshotId) {
        playlistItems[p.id] = known;
        continue;
      }
      const ids: string[] = [];
      // The newer `items` link first: where the source has dropped `/tracks`, only it works.
      let url: string | undefined = (p.items ?? p.tracks)?.href ?? `/playlists/${p.id}/items`;
      // Episodes come as episodes only when asked for (`additional_types`); otherwise Spotify
      // sends them in a track's shape or as null.
      url = withParam(withLimit(url, 50), 'additional_types', 'track,episode');
      let position = 0;
      // A `next` that comes round again (a source bug) must not loop for ever, as syncCollection guards too.
      const visited = new Set<string>();
      let refused = false;
      while (url && !visited.has(url)) {
        visited.add(url);
        let res: { body: SpPage<SpPlaylistItem | null> | undefined };
        try {
          res = await http.get<SpPage<SpPlaylistItem | null>>(url);
        } catch (error) {
          // A playlist the person follows but does not own can answer 403 for its items:
          // that playlist is skipped, not the sync (saved tracks and plays still come).
          if (!(error instanceof AppError) || error.code !== 'forbidden') throw error;
          ctx.skip({ kind: 'forbidden', resource: `/playlists/${p.id}/items`, reason: error.message });
          refused = true;
          break;
        }
        const records: NormalizedRecord[] = [];
        for (const entry of res.body?.items ?? []) {
          const at = position++;
          if (entry === null || typeof entry !== 'object') {
            ctx.skip({
              kind: 'malformed',
              resource: `/playlists/${p.id}/items[${at}]`,
              reason: 'the source listed null',
            });
            continue;
          }
          try {
            records.push(spotifyNormalize.playlistItem(p.id, at, entry));
          } catch (error) {
            if (!(error instanceof UnreadableItem)) throw error;
            ctx.skip({ kind: 'malformed', resource: `/playlists/${p.id}/items[${at}]`, reason: error.message });
          }
        }
        if (records.length) await ctx.emit({ upserts: records, deletes: [] });
        ids.push(...records.map((r) => r.externalId));
        url = res.body?.next ?? undefined;
      }
      if (refused) {
        // Keep what we held (no tombstones for items we could not list) under the old
        // snapshot, so the next run asks again.
        if (known) playlistItems[p.id] = known;
        continue;
      }
      const keep = new Set(ids);
      const gone = (known?.ids ?? [])
        .filter((id) => !keep.has(id))
        .map((externalId) => ({ type: 'media.playlist_item', externalId }));
      if (gone.length) await ctx.emit({ upserts: [], deletes: gone });
      playlistItems[p.id] = { ...(snapshotId !== undefined ? { snapshotId } : {}), ids };
    }
    // A playlist that is gone (tombstoned) takes its items with it.
    for (const [id, v] of Object.entries(prevItems))
      if (!playlistItems[id] && pendingPlaylists.has(id)) playlistItems[id] = v;
    const goneItems = Object.entries(prevItems)
      .filter(([id]) => !playlistItems[id])
      .flatMap(([, v]) => v.ids);
    for (let i = 0; i < goneItems.length; i += 500) {
      await ctx.emit({
        upserts: [],
        deletes: goneItems.slice(i, i + 500).map((externalId) => ({ type: 'media.playlist_item', externalId })),
      });
    }

    next.saved = (
      await syncCollection(
        http,
        ctx,
        {
          firstPage: '/me/tracks?limit=50',
          type: 'media.track',
          conditional: false,
          items: pageItems<SpSaved>,
          next: pageNext,
          resource: '/me/tracks',
          normalize: spotifyNormalize.savedTrack,
        },
        prev?.saved,
      )
    ).state;

    next.playedAfter = await this.recentlyPlayed(http, ctx, prev?.playedAfter);
    return next;
  }

  /**
   * Plays are append-only. The first run walks back through `before` pages (as far as Spotify
   * keeps them); later runs ask only for plays `after` the newest we have.
   */
  private async recentlyPlayed(
    http: SourceHttp,
    ctx: SyncContext,
    after: string | undefined,
  ): Promise<string | undefined> {
    if (after) {
      let newest = after;
      for (let guard = 0; guard < 100; guard++) {
        const res = await http.get<SpPage<SpPlay | null>>(
          `/me/player/recently-played?limit=50&after=${encodeURIComponent(newest)}`,
        );
        const items = res.body?.items ?? [];
        if (items.length === 0) break;
        await emitPlays(ctx, items);
        const advanced = res.body?.cursors?.after ?? newestPlay(items) ?? newest;
        if (advanced === newest) break;
        newest = advanced;
      }
      return newest;
    }
    let newest = after;
    let url: string | undefined = '/me/player/recently-played?limit=50';
    for (let guard = 0; url && guard < 100; guard++) {
      const res: { body: SpPage<SpPlay | null> | undefined } = await http.get<SpPage<SpPlay | null>>(url);
      const items = res.body?.items ?? [];
      if (items.length === 0) break;
      await emitPlays(ctx, items);
      // The first page is the newest: its `after` cursor is where the next run starts.
      newest ??= res.body?.cursors?.after ?? newestPlay(items);
      url = res.body?.next ?? undefined;
    }
    return newest;
  }
}

/** The profile → its record; one that names no id is a recorded skip, as other entries are. */
async function emitProfile(ctx: SyncContext, user: SpUser): Promise<void> {
  let record: NormalizedRecord;
  try {
    record = spotifyNormalize.profile(user);
  } catch (error) {
    if (!(error instanceof UnreadableItem)) throw error;
    ctx.skip({ kind: 'malformed', resource: '/me', reason: error.message });
    return;
  }
  await ctx.emit({ upserts: [record], deletes: [] });
}

/** A page of plays → records; an entry that is null or names no track is a recorded skip. */
async function emitPlays(ctx: SyncContext, items: readonly (SpPlay | null)[]): Promise<void> {
  const upserts: NormalizedRecord[] = [];
  items.forEach((item, index) => {
    const resource = `/me/player/recently-played[${index}]`;
    if (item === null || typeof item !== 'object') {
      ctx.skip({ kind: 'malformed', resource, reason: 'the source listed null' });
      return;
    }
    if (validTime(item.played_at) === undefined) {
      ctx.skip({ kind: 'malformed', resource, reason: 'the play has no played_at time' });
      return;
    }
    try {
      upserts.push(spotifyNormalize.play(item));
    } catch (error) {
      if (!(error instanceof UnreadableItem)) throw error;
      ctx.skip({ kind: 'malformed', resource, reason: error.message });
    }
  });
  if (upserts.length > 0) await ctx.emit({ upserts, deletes: [] });
}

/** The newest play's time in Unix ms (recently-played's `after` unit), when a page has none in `cursors`. */
function newestPlay(items: readonly (SpPlay | null)[]): string | undefined {
  const times = items.flatMap((i) => {
    const t = i ? Date.parse(i.played_at) : NaN;
    return Number.isNaN(t) ? [] : [t];
  });
  return times.length > 0 ? String(Math.max(...times)) : undefined;
}

/** An ISO time as sent, or nothing for a null or unparseable one (Spotify sends null `added_at` for old playlists). */
function validTime(value: unknown): string | undefined {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? value : undefined;
}

function withParam(url: string, name: string, value: string): string {
  return new RegExp(`[?&]${name}=`).test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}${name}=${value}`;
}

function withLimit(url: string, limit: number): string {
  return withParam(url, 'limit', String(limit));
}

function isSpotifyCursor(value: unknown): value is SpotifyCursor {
  return typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1;
}
