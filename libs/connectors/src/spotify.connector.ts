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
interface SpTrack {
  id: string;
  name: string;
  artists?: SpArtist[];
  album?: { id?: string; name?: string };
  duration_ms?: number;
  uri?: string;
  type?: string;
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
  snapshot_id: string;
  owner?: { id: string; display_name?: string | null };
  tracks?: { href?: string; total?: number };
  items?: { href?: string; total?: number };
  external_urls?: { spotify?: string };
}
interface SpPlaylistItem {
  added_at?: string | null;
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
  /** Per playlist: the snapshot whose items we hold, and their ids (a changed snapshot is re-read). */
  playlistItems?: Record<string, { snapshotId: string; ids: string[] }>;
  saved?: CollectionState;
  /** recently-played `after` cursor (Unix ms of the newest play we have). */
  playedAfter?: string;
}

const creators = (t: SpTrack) => (t.artists ?? []).map((a) => a.name);
/** Spotify's episodes (podcasts) come through the same endpoints as tracks. */
const kind = (t: SpTrack & { type?: string }) => (t.type === 'episode' ? 'podcast' : 'music');

/** Spotify objects → the record catalog's shapes (libs/record-catalog). */
export const spotifyNormalize = {
  profile: (u: SpUser): NormalizedRecord => {
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
    return {
      type: 'media.playlist',
      externalId: p.id,
      data: compact({
        source: 'spotify',
        id: p.id,
        name: p.name,
        description: p.description,
        ownerId: p.owner?.id,
        public: p.public,
        itemCount: (p.items ?? p.tracks)?.total,
        url: p.external_urls?.spotify,
      }),
    };
  },
  playlistItem: (playlistId: string, position: number, i: SpPlaylistItem): NormalizedRecord | undefined => {
    // `item` is the newer name, `track` the deprecated one; either may be the only one sent.
    const t = i.item ?? i.track;
    if (!t?.id) return undefined; // local files and removed tracks have no id
    return {
      type: 'media.playlist_item',
      externalId: `${playlistId}:${position}`,
      ...(i.added_at ? { occurredAt: i.added_at } : {}),
      data: compact({ source: 'spotify', playlistId, trackId: t.id, position, title: t.name, addedAt: i.added_at }),
    };
  },
  savedTrack: (s: SpSaved): NormalizedRecord => {
    const t = s.track;
    return {
      type: 'media.track',
      externalId: t.id,
      occurredAt: s.added_at,
      data: compact({
        source: 'spotify',
        id: t.id,
        title: t.name,
        creators: creators(t),
        collection: t.album?.name,
        kind: kind(t),
        durationMs: t.duration_ms,
        url: t.external_urls?.spotify,
        savedAt: s.added_at,
      }),
    };
  },
  /**
   * Same shape as a Netflix watch (media.watch_event): what was played and when. `durationMs`
   * means time played; recently-played gives `played_at` only (not how long), so it is left
   * out rather than filled with the track's length.
   */
  play: (p: SpPlay): NormalizedRecord => {
    const t = p.track;
    return {
      type: 'media.play_event',
      externalId: `${t.id}@${p.played_at}`,
      occurredAt: p.played_at,
      data: compact({
        source: 'spotify',
        trackId: t.id,
        title: t.name,
        creators: creators(t),
        kind: kind(t),
        playedAt: p.played_at,
      }),
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
    if (me.body) await ctx.emit({ upserts: [spotifyNormalize.profile(me.body)], deletes: [] });

    // Playlists: listing them also tells us each one's snapshot, so unchanged playlists cost nothing more.
    const listed: SpPlaylist[] = [];
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
            listed.push(...items.filter((p): p is SpPlaylist => p !== null && typeof p === 'object'));
            return items;
          },
          next: pageNext,
          resource: '/me/playlists',
          normalize: spotifyNormalize.playlist,
        },
        prev?.playlists,
      )
    ).state;

    const prevItems = prev?.playlistItems ?? {};
    const playlistItems: NonNullable<SpotifyCursor['playlistItems']> = {};
    next.playlistItems = playlistItems;
    for (const p of listed) {
      const known = prevItems[p.id];
      if (known && known.snapshotId === p.snapshot_id) {
        playlistItems[p.id] = known;
        continue;
      }
      const ids: string[] = [];
      // The newer `items` link first: where the source has dropped `/tracks`, only it works.
      let url: string | undefined = (p.items ?? p.tracks)?.href ?? `/playlists/${p.id}/items`;
      url = withLimit(url, 50);
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
          const record = spotifyNormalize.playlistItem(p.id, at, entry);
          if (record) records.push(record);
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
      playlistItems[p.id] = { snapshotId: p.snapshot_id, ids };
    }
    // A playlist that is gone takes its items with it.
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
        const res = await http.get<SpPage<SpPlay>>(
          `/me/player/recently-played?limit=50&after=${encodeURIComponent(newest)}`,
        );
        const items = res.body?.items ?? [];
        if (items.length === 0) break;
        await ctx.emit({ upserts: items.map(spotifyNormalize.play), deletes: [] });
        const advanced = res.body?.cursors?.after ?? String(Math.max(...items.map((i) => Date.parse(i.played_at))));
        if (advanced === newest) break;
        newest = advanced;
      }
      return newest;
    }
    let newest = after;
    let url: string | undefined = '/me/player/recently-played?limit=50';
    for (let guard = 0; url && guard < 100; guard++) {
      const res: { body: SpPage<SpPlay> | undefined } = await http.get<SpPage<SpPlay>>(url);
      const items = res.body?.items ?? [];
      if (items.length === 0) break;
      await ctx.emit({ upserts: items.map(spotifyNormalize.play), deletes: [] });
      // The first page is the newest: its `after` cursor is where the next run starts.
      newest ??= res.body?.cursors?.after ?? String(Math.max(...items.map((i) => Date.parse(i.played_at))));
      url = res.body?.next ?? undefined;
    }
    return newest;
  }
}

function withLimit(url: string, limit: number): string {
  return /[?&]limit=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}limit=${limit}`;
}

function isSpotifyCursor(value: unknown): value is SpotifyCursor {
  return typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1;
}
