import { randomBytes } from 'node:crypto';

import { isoAt, itemAt, type Rng, SEED_EPOCH_MS, WORDS } from '../prng.js';
import { laterThan } from '../seeding.js';
import type { Account, CollectionSpec, SimItem } from '../simulator-context.js';

/**
 * Spotify's data in the simulator's compact model (flat snake_case fields; a saved or
 * played track carries its track's fields) and its rendering in the Web API's shape.
 */

export interface TrackFields {
  track_id: string;
  name: string;
  artist_id: string;
  artist_name: string;
  album_id: string;
  album_name: string;
  release_date: string;
  duration_ms: number;
  explicit: boolean;
  popularity: number;
  isrc: string;
  track_number: number;
  disc_number: number;
}

export interface PlaylistEntry extends TrackFields {
  added_at: string;
}

export interface PlaylistItem extends SimItem {
  id: string;
  name: string;
  description: string;
  public: boolean;
  collaborative: boolean;
  snapshot_id: string;
  /** The playlist's tracks in playlist order. */
  entries: PlaylistEntry[];
}

export interface SavedTrackItem extends SimItem, TrackFields {
  id: string;
  added_at: string;
}

export interface PlayItem extends SimItem, TrackFields {
  /** The play's timestamp in epoch ms, as a string (Spotify's cursors are epoch ms). */
  id: string;
  played_at: string;
  context_playlist_id: string | null;
}

const ARTISTS = [
  'Nova Echo',
  'The Quartz',
  'Amber Fjord',
  'Saffron Reef',
  'Velvet Signal',
  'Zephyr Lane',
  'Cobalt Hearts',
  'Iris & Pine',
];

export function generateTrack(rng: Rng): TrackFields {
  const artist = rng.int(0, ARTISTS.length - 1);
  return {
    track_id: rng.chars(22),
    name: rng.words(rng.int(1, 4)).replace(/^./, (c) => c.toUpperCase()),
    // Artists and albums have stable ids derived from their index, so they repeat across tracks.
    artist_id: `0${String(artist).padStart(2, '0')}ArTiSt${'x'.repeat(13)}`,
    artist_name: itemAt(ARTISTS, artist),
    album_id: `${rng.chars(20)}AL`,
    album_name: `${rng.pick(WORDS)} ${rng.pick(WORDS)}`,
    release_date: isoAt(SEED_EPOCH_MS - rng.int(0, 20 * 365) * 86_400_000).slice(0, 10),
    duration_ms: rng.int(90_000, 420_000),
    explicit: rng.bool(0.15),
    popularity: rng.int(0, 100),
    isrc: `US${rng.chars(3, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}${rng.int(10, 25)}${String(rng.int(0, 99999)).padStart(5, '0')}`,
    track_number: rng.int(1, 14),
    disc_number: 1,
  };
}

const snapshot = (rng: Rng) => rng.chars(32, 'abcdefghijklmnopqrstuvwxyz0123456789');

export function spotifyCollections(): Record<string, CollectionSpec> {
  return {
    playlists: {
      defaultCount: 7,
      generate(_ctx, account, rng, index): PlaylistItem {
        const n = account.seedCounts.playlist_tracks ?? rng.int(5, 60);
        const start = SEED_EPOCH_MS + index * 86_400_000;
        const entries: PlaylistEntry[] = [];
        for (let i = 0; i < n; i++) entries.push({ ...generateTrack(rng), added_at: isoAt(start + i * 600_000) });
        return {
          id: rng.chars(22),
          name: `${rng.pick(WORDS)} ${rng.pick(['mix', 'vibes', 'focus', 'run', 'chill', 'classics'])}`.replace(
            /^./,
            (c) => c.toUpperCase(),
          ),
          description: rng.bool(0.6) ? rng.words(rng.int(3, 8)) : '',
          public: rng.bool(0.7),
          collaborative: false,
          snapshot_id: snapshot(rng),
          entries,
        };
      },
      stamp(item) {
        // Any change to a playlist gives it a new snapshot_id, as Spotify does.
        item.snapshot_id = randomBytes(16).toString('hex');
      },
    },
    tracks: {
      defaultCount: 45,
      generate(_ctx, _account, rng, index): SavedTrackItem {
        const t = generateTrack(rng);
        return { id: t.track_id, ...t, added_at: isoAt(SEED_EPOCH_MS + index * 3_600_000 + rng.int(0, 3_599_999)) };
      },
      stamp(item, now, kind) {
        if (kind === 'create') item.added_at = laterThan(undefined, now);
      },
      readOnly: ['track_id', 'added_at'],
    },
    recently_played: {
      defaultCount: 50,
      generate(_ctx, _account, rng, index): PlayItem {
        const t = generateTrack(rng);
        // Plays are 4 minutes apart plus jitter under 4 minutes: strictly increasing.
        const at = SEED_EPOCH_MS + index * 480_000 + rng.int(0, 239_999);
        return { id: String(at), ...t, played_at: new Date(at).toISOString(), context_playlist_id: null };
      },
      stamp(item, now, kind, plays) {
        if (kind === 'create') {
          // A listener plays one track at a time: a new play is later than every play before
          // it, by 1 ms at least. Its time is its id (and the `after` cursor): two plays added
          // within one millisecond would otherwise be one item, the first one lost.
          let at = now;
          for (const p of plays.values()) at = Math.max(at, Number(p.id) + 1);
          item.id = String(at);
          item.played_at = new Date(at).toISOString();
        }
      },
      readOnly: ['track_id', 'played_at'],
    },
  };
}

// ---- rendering ----

const urls = (kind: string, id: string) => ({ spotify: `https://open.spotify.com/${kind}/${id}` });

function renderArtist(api: string, t: TrackFields) {
  return {
    external_urls: urls('artist', t.artist_id),
    href: `${api}/v1/artists/${t.artist_id}`,
    id: t.artist_id,
    name: t.artist_name,
    type: 'artist',
    uri: `spotify:artist:${t.artist_id}`,
  };
}

/**
 * A TrackObject. `nulls` (the nullFields quirk): the album has no images and the track no
 * external_ids, as Spotify sends some catalog tracks.
 */
export function renderTrack(api: string, t: TrackFields, nulls = false) {
  const artist = renderArtist(api, t);
  return {
    album: {
      album_type: 'album',
      total_tracks: 14,
      available_markets: ['DE', 'FR', 'GB', 'US'],
      external_urls: urls('album', t.album_id),
      href: `${api}/v1/albums/${t.album_id}`,
      id: t.album_id,
      images: nulls
        ? []
        : [
            { url: `https://i.scdn.co/image/ab67616d0000b273${t.album_id}`, height: 640, width: 640 },
            { url: `https://i.scdn.co/image/ab67616d00001e02${t.album_id}`, height: 300, width: 300 },
          ],
      name: t.album_name,
      release_date: t.release_date,
      release_date_precision: 'day',
      type: 'album',
      uri: `spotify:album:${t.album_id}`,
      artists: [artist],
    },
    artists: [artist],
    available_markets: ['DE', 'FR', 'GB', 'US'],
    disc_number: t.disc_number,
    duration_ms: t.duration_ms,
    explicit: t.explicit,
    ...(nulls ? {} : { external_ids: { isrc: t.isrc } }),
    external_urls: urls('track', t.track_id),
    href: `${api}/v1/tracks/${t.track_id}`,
    id: t.track_id,
    is_local: false,
    name: t.name,
    popularity: t.popularity,
    preview_url: null,
    track_number: t.track_number,
    type: 'track',
    uri: `spotify:track:${t.track_id}`,
  };
}

export function renderUserRef(api: string, a: Account) {
  return {
    external_urls: urls('user', a.login),
    href: `${api}/v1/users/${a.login}`,
    id: a.login,
    type: 'user',
    uri: `spotify:user:${a.login}`,
  };
}

/** A SimplifiedPlaylistObject; `nulls` (the nullFields quirk): name, description, public and images null. */
export function renderPlaylist(api: string, p: PlaylistItem, owner: Account, nulls = false) {
  return {
    collaborative: p.collaborative,
    description: nulls ? null : p.description,
    external_urls: urls('playlist', p.id),
    href: `${api}/v1/playlists/${p.id}`,
    id: p.id,
    images: nulls ? null : [{ url: `https://mosaic.scdn.co/640/${p.id}`, height: 640, width: 640 }],
    name: nulls ? null : p.name,
    owner: { ...renderUserRef(api, owner), display_name: owner.name },
    primary_color: null,
    public: nulls ? null : p.public,
    snapshot_id: p.snapshot_id,
    tracks: { href: `${api}/v1/playlists/${p.id}/tracks`, total: p.entries.length },
    type: 'playlist',
    uri: `spotify:playlist:${p.id}`,
  };
}

export function renderPlaylistEntry(api: string, e: PlaylistEntry, owner: Account) {
  return {
    added_at: e.added_at,
    added_by: renderUserRef(api, owner),
    is_local: false,
    primary_color: null,
    track: renderTrack(api, e),
    video_thumbnail: { url: null },
  };
}
