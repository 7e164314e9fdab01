import { z } from 'zod';

/**
 * The pages of Spotify's Web API that the Spotify connector reads, as Spotify's OpenAPI
 * description has them (sonallux/spotify-web-api, `fixed-spotify-open-api.yml`, commit
 * a336958; each schema names its `components/schemas` entry). Written in the project's own
 * words so tests need no copy of the description: the simulator's answers must parse under
 * them (provider-shapes.int-spec.ts) and the connectors' property tests generate pages from
 * them. Objects are loose, as OpenAPI's are (unknown fields allowed). A field is required
 * only where the description's `required` lists it — Spotify's lists few — and nullable where
 * the description says so, in its schema or its prose; where Spotify is *known* to send
 * null or a shape its description leaves out, the comment says so.
 */

/** Timestamps are ISO 8601 UTC (`format: date-time`). */
const timestamp = z.iso.datetime({ offset: true });

/** ExternalUrlObject. */
const externalUrls = z.looseObject({ spotify: z.string().optional() });

/** ImageObject: `url`, `height`, `width` required; height and width nullable. */
const image = z.looseObject({
  url: z.string(),
  height: z.number().int().nullable(),
  width: z.number().int().nullable(),
});

/** ExternalIdObject (isrc, ean, upc). */
const externalIds = z.looseObject({
  isrc: z.string().optional(),
  ean: z.string().optional(),
  upc: z.string().optional(),
});

/** SimplifiedArtistObject. */
const simplifiedArtist = z.looseObject({
  external_urls: externalUrls.optional(),
  /** Known: null for a local file's artist. */
  href: z.string().nullable().optional(),
  /** Known: null for the artist of a local file (Spotify's "Local Files" guide). */
  id: z.string().nullable().optional(),
  name: z.string().optional(),
  type: z.literal('artist').optional(),
  /** Known: null for a local file's artist. */
  uri: z.string().nullable().optional(),
});

/** SimplifiedAlbumObject = AlbumBase (its `required` list) + `artists` (required). */
const simplifiedAlbum = z.looseObject({
  album_type: z.enum(['album', 'single', 'compilation']),
  total_tracks: z.number().int(),
  /** Deprecated. */
  available_markets: z.array(z.string()),
  external_urls: externalUrls,
  href: z.string(),
  id: z.string(),
  /** "Widest first"; may be empty. */
  images: z.array(image),
  /** "In case of an album takedown, the value may be an empty string." */
  name: z.string(),
  release_date: z.string(),
  release_date_precision: z.enum(['year', 'month', 'day']),
  restrictions: z.looseObject({ reason: z.string().optional() }).optional(),
  type: z.literal('album'),
  uri: z.string(),
  artists: z.array(simplifiedArtist),
});

/**
 * Known, not in the description: a local file's album, as Spotify's "Local Files" guide shows
 * it — its name as tagged in the file, and null where AlbumBase requires ids, links and dates.
 */
const localAlbum = z.looseObject({
  album_type: z.null(),
  available_markets: z.array(z.string()),
  external_urls: externalUrls,
  href: z.null(),
  id: z.null(),
  images: z.array(image),
  name: z.string(),
  release_date: z.null(),
  release_date_precision: z.null(),
  type: z.literal('album'),
  uri: z.null(),
  artists: z.array(simplifiedArtist),
});

/** TrackObject: nothing in it is `required` in the description. */
export const spotifyTrack = z.looseObject({
  /** Known: a local file's track (`is_local: true`) has the local-file album, null ids and all. */
  album: z.union([simplifiedAlbum, localAlbum]).optional(),
  artists: z.array(simplifiedArtist).optional(),
  /** Deprecated. */
  available_markets: z.array(z.string()).optional(),
  disc_number: z.number().int().optional(),
  duration_ms: z.number().int().optional(),
  explicit: z.boolean().optional(),
  /** Known: left out (or `{}`) for tracks without codes, e.g. local files. */
  external_ids: externalIds.optional(),
  external_urls: externalUrls.optional(),
  /** Known: null for a local file. */
  href: z.string().nullable().optional(),
  /** Known: null for a local file, which has only its `spotify:local:…` URI. */
  id: z.string().nullable().optional(),
  is_playable: z.boolean().optional(),
  linked_from: z.looseObject({ id: z.string().optional() }).optional(),
  restrictions: z.looseObject({ reason: z.string().optional() }).optional(),
  name: z.string().optional(),
  /** Deprecated. */
  popularity: z.number().int().optional(),
  /** Deprecated; nullable. */
  preview_url: z.string().nullable().optional(),
  track_number: z.number().int().optional(),
  type: z.literal('track').optional(),
  uri: z.string().optional(),
  is_local: z.boolean().optional(),
});

/** SimplifiedShowObject = ShowBase, with its `required` list. */
const simplifiedShow = z.looseObject({
  available_markets: z.array(z.string()),
  copyrights: z.array(z.looseObject({ text: z.string().optional(), type: z.string().optional() })),
  description: z.string(),
  html_description: z.string(),
  explicit: z.boolean(),
  external_urls: externalUrls,
  href: z.string(),
  id: z.string(),
  images: z.array(image),
  is_externally_hosted: z.boolean(),
  languages: z.array(z.string()),
  media_type: z.string(),
  name: z.string(),
  /** Deprecated. */
  publisher: z.string(),
  type: z.literal('show'),
  uri: z.string(),
  total_episodes: z.number().int(),
});

/** EpisodeObject = EpisodeBase (its `required` list) + `show` (required). */
export const spotifyEpisode = z.looseObject({
  /** Deprecated; nullable. */
  audio_preview_url: z.string().nullable(),
  description: z.string(),
  html_description: z.string(),
  duration_ms: z.number().int(),
  explicit: z.boolean(),
  external_urls: externalUrls,
  href: z.string(),
  id: z.string(),
  images: z.array(image),
  is_externally_hosted: z.boolean(),
  is_playable: z.boolean(),
  languages: z.array(z.string()),
  name: z.string(),
  release_date: z.string(),
  release_date_precision: z.enum(['year', 'month', 'day']),
  type: z.literal('episode'),
  uri: z.string(),
  show: simplifiedShow,
});

/** PlaylistUserObject (`added_by`, and with `display_name` the PlaylistOwnerObject). */
const playlistUser = z.looseObject({
  external_urls: externalUrls.optional(),
  href: z.string().optional(),
  id: z.string().optional(),
  type: z.literal('user').optional(),
  uri: z.string().optional(),
});
/** PlaylistOwnerObject: `display_name` nullable. */
const playlistOwner = playlistUser.extend({ display_name: z.string().nullable().optional() });

/** PlaylistTracksRefObject: `{href, total}` under `items` (new) or `tracks` (deprecated). */
const tracksRef = z.looseObject({ href: z.string().optional(), total: z.number().int().optional() });

/** PagingObject: every field required; `next`/`previous` nullable. */
const paging = <T extends z.ZodType>(item: T) =>
  z.looseObject({
    href: z.string(),
    items: z.array(item),
    limit: z.number().int(),
    next: z.string().nullable(),
    offset: z.number().int(),
    previous: z.string().nullable(),
    total: z.number().int(),
  });

/** SimplifiedPlaylistObject: nothing `required`; both generations of the items reference. */
export const spotifySimplifiedPlaylist = z.looseObject({
  collaborative: z.boolean().optional(),
  /** "Only returned for modified, verified playlists, otherwise `null`." */
  description: z.string().nullable().optional(),
  external_urls: externalUrls.optional(),
  href: z.string().optional(),
  id: z.string().optional(),
  /** "May be empty or contain up to three images"; known: null for a playlist without any. */
  images: z.array(image).nullable().optional(),
  /** Known: null for some playlists (issue #15), though the description types it string. */
  name: z.string().nullable().optional(),
  owner: playlistOwner.optional(),
  /** "`null` the playlist status is not relevant." */
  public: z.boolean().nullable().optional(),
  snapshot_id: z.string().optional(),
  /** The newer name of the reference. */
  items: tracksRef.optional(),
  /** Deprecated: the older name. */
  tracks: tracksRef.optional(),
  type: z.string().optional(),
  uri: z.string().optional(),
});

/** PlaylistTrackObject: one entry of a playlist, in either generation of field names. */
export const spotifyPlaylistEntry = z.looseObject({
  /** "Some very old playlists may return `null` in this field." */
  added_at: timestamp.nullable().optional(),
  /** Same note as `added_at`. */
  added_by: playlistUser.nullable().optional(),
  is_local: z.boolean().optional(),
  /** TrackObject | EpisodeObject; known: null for an entry whose track Spotify removed. */
  item: z.union([spotifyTrack, spotifyEpisode]).nullable().optional(),
  /** Deprecated name of `item`; same known null. */
  track: z.union([spotifyTrack, spotifyEpisode]).nullable().optional(),
});

/** SavedTrackObject. */
export const spotifySavedTrack = z.looseObject({ added_at: timestamp.optional(), track: spotifyTrack.optional() });

/** PlayHistoryObject (`context` is a ContextObject; known: null when played outside one). */
export const spotifyPlayHistory = z.looseObject({
  track: spotifyTrack.optional(),
  played_at: timestamp.optional(),
  context: z
    .looseObject({
      type: z.string().optional(),
      href: z.string().optional(),
      external_urls: externalUrls.optional(),
      uri: z.string().optional(),
    })
    .nullable()
    .optional(),
});

/** `GET /me` (get-current-users-profile): PrivateUserObject, nothing `required`. */
export const spotifyMe = z.looseObject({
  country: z.string().optional(),
  /** "`null` if not available." */
  display_name: z.string().nullable().optional(),
  email: z.string().optional(),
  external_urls: externalUrls.optional(),
  followers: z.looseObject({ href: z.string().nullable().optional(), total: z.number().int().optional() }).optional(),
  href: z.string().optional(),
  id: z.string().optional(),
  images: z.array(image).optional(),
  product: z.string().optional(),
  type: z.string().optional(),
  uri: z.string().optional(),
});

/**
 * `GET /me/playlists` (get-a-list-of-current-users-playlists): PagingPlaylistObject. Known:
 * since November 2024 an entry may be `null` (a playlist no longer available to the app).
 */
export const spotifyPlaylistsPage = paging(spotifySimplifiedPlaylist.nullable());

/** `GET /playlists/{id}/items` and `/tracks` (get-playlists-items / get-playlists-tracks): PagingPlaylistTrackObject. */
export const spotifyPlaylistItemsPage = paging(spotifyPlaylistEntry);

/** `GET /me/tracks` (get-users-saved-tracks): PagingSavedTrackObject. */
export const spotifySavedTracksPage = paging(spotifySavedTrack);

/**
 * `GET /me/player/recently-played` (get-recently-played): CursorPagingPlayHistoryObject.
 * Nothing in CursorPagingObject is `required`; `next` is "`null` if none" in its prose, and
 * `cursors` is known to be null on an empty page.
 */
export const spotifyRecentlyPlayedPage = z.looseObject({
  href: z.string().optional(),
  limit: z.number().int().optional(),
  next: z.string().nullable().optional(),
  cursors: z.looseObject({ after: z.string().optional(), before: z.string().optional() }).nullable().optional(),
  total: z.number().int().optional(),
  items: z.array(spotifyPlayHistory).optional(),
});
