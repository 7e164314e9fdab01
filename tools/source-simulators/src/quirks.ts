import { ChangeError } from './seeding.js';

/**
 * Per-account behaviours of the real APIs that the default simulator smooths over, each
 * switched on for one account so a test can put a connector through exactly that case.
 * Every one is something the source is documented or known to do.
 */
export interface Quirks {
  /**
   * GitHub: a page's ETag covers its body only, as GitHub's do. By default the simulator
   * also folds the list's length in (so a page's Link change shows in its ETag); with this
   * on, a page whose items did not change answers 304 even when a page was added after it.
   */
  etagOverBodyOnly?: boolean;
  /**
   * GitHub: Link URLs keep the request's query as sent, commas unencoded
   * (`affiliation=owner,collaborator`), as GitHub echoes it.
   */
  rawCommasInLinks?: boolean;
  /** Spotify: these playlists (ids) answer 403 for their items, as one followed but not owned can. */
  forbiddenPlaylists?: string[];
  /** Spotify: `/me/playlists` answers `null` at these positions (0-based, in the first page), as since Nov 2024. */
  nullPlaylistEntries?: number[];
  /**
   * Spotify: which generation of field names playlists and their entries carry: `old`
   * (`tracks`/`track` only), `new` (`items`/`item` only, `/tracks` gone), or `both` (default).
   */
  playlistFields?: 'old' | 'new' | 'both';
  /**
   * Spotify and GitHub: every field the source's description marks nullable, or that the
   * source is known to send as null, comes as null (or left out, where it is known to be).
   * Spotify: a playlist's name, description, public and images; an entry's added_at and
   * added_by, and the first entry of each playlist pointing at nothing (`track`/`item` null:
   * a track since removed); albums without images; tracks without external_ids; the
   * profile's display_name. GitHub: a repository's description, homepage, language, license
   * and pushed_at; an issue's body, user and assignee; the profile's name, blog and email.
   */
  nullFields?: boolean;
  /**
   * Spotify and GitHub: the listing changes under the reader, as a live account does. Each
   * time the first page of a paged listing is served (GitHub /user/repos sorted by name,
   * /user/starred, /issues; Spotify /me/tracks), the listing changes at its head:
   * - `insert`: one new item is added at the head, so every later page is shifted right by
   *   one (it starts with the item the previous page ended with: a duplicate, harmless);
   * - `remove`: the head item (just served) is deleted, so every later page is shifted left
   *   by one and the item the second page began with is never served in that walk, though
   *   it still exists — the case where reading a listing in full could wrongly see a deletion.
   */
  shiftingPages?: 'insert' | 'remove';
  /** ListenBrainz: these listens (simulator ids) come without `track_name`, as old imported listens can. */
  listensWithoutTrackName?: string[];
  /** ListenBrainz: these listens come without `additional_info` (what a bare scrobbler sends). */
  listensWithoutAdditionalInfo?: string[];
}

/** Validates a control API body into quirks: an unknown name is refused, not ignored. */
export function parseQuirks(value: unknown): Quirks {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new ChangeError(400, 'quirks must be an object');
  const q = value as Record<string, unknown>;
  const known = [
    'etagOverBodyOnly',
    'rawCommasInLinks',
    'forbiddenPlaylists',
    'nullPlaylistEntries',
    'playlistFields',
    'nullFields',
    'shiftingPages',
    'listensWithoutTrackName',
    'listensWithoutAdditionalInfo',
  ];
  for (const k of Object.keys(q)) if (!known.includes(k)) throw new ChangeError(400, `unknown quirk ${k}`);
  const flag = (k: string) => {
    if (q[k] !== undefined && typeof q[k] !== 'boolean') throw new ChangeError(400, `${k} must be a boolean`);
    return q[k];
  };
  const list = <T>(k: string, ok: (v: unknown) => boolean): T[] | undefined => {
    if (q[k] === undefined) return undefined;
    if (!Array.isArray(q[k]) || !q[k].every(ok)) throw new ChangeError(400, `${k} has a wrong type`);
    return q[k] as T[];
  };
  const shifting = q.shiftingPages;
  if (shifting !== undefined && shifting !== 'insert' && shifting !== 'remove')
    throw new ChangeError(400, 'shiftingPages must be insert or remove');
  const fields = q.playlistFields;
  if (fields !== undefined && fields !== 'old' && fields !== 'new' && fields !== 'both')
    throw new ChangeError(400, 'playlistFields must be old, new or both');
  const quirks: Quirks = {
    etagOverBodyOnly: flag('etagOverBodyOnly'),
    rawCommasInLinks: flag('rawCommasInLinks'),
    forbiddenPlaylists: list<string>('forbiddenPlaylists', (v) => typeof v === 'string'),
    nullPlaylistEntries: list<number>('nullPlaylistEntries', (v) => Number.isInteger(v) && (v as number) >= 0),
    playlistFields: fields,
    nullFields: flag('nullFields'),
    shiftingPages: shifting,
    listensWithoutTrackName: list<string>('listensWithoutTrackName', (v) => typeof v === 'string'),
    listensWithoutAdditionalInfo: list<string>('listensWithoutAdditionalInfo', (v) => typeof v === 'string'),
  };
  return Object.fromEntries(Object.entries(quirks).filter(([, v]) => v !== undefined));
}
