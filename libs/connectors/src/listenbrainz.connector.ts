import { AppError } from '@context-gateway/errors';

import { compact } from './compact.js';
import type { Connector, NormalizedRecord, SkippedItem, SyncContext } from './connector.js';
import { SourceHttp } from './source-http.js';

/**
 * The parts of ListenBrainz's listen JSON we read (listenbrainz.readthedocs.io, "JSON
 * Documentation"). Everything in `additional_info` is whatever the person's scrobbler sent,
 * unvalidated, so every field is read defensively.
 */
interface LbAdditionalInfo {
  duration_ms?: unknown;
  duration?: unknown;
  /**
   * Seconds actually listened: documented in json.rst's additional_info table since
   * listenbrainz-server 9b8f0e06f (2025-11) and kept by the server (listen.py's
   * ADDITIONAL_INFO keys; its Maloja importer sets it). Few scrobblers send it.
   */
  duration_played?: unknown;
  isrc?: unknown;
  artist_mbids?: unknown;
  release_mbid?: unknown;
  recording_mbid?: unknown;
  submission_client?: unknown;
  media_player?: unknown;
}
/** Added by the server when it matched the listen to MusicBrainz; absent when it could not. */
interface LbMbidMapping {
  recording_mbid?: unknown;
  release_mbid?: unknown;
  artists?: { artist_mbid?: unknown; artist_credit_name?: unknown }[] | null;
}
export interface LbListen {
  listened_at?: unknown;
  recording_msid?: unknown;
  user_name?: unknown;
  track_metadata?: {
    artist_name?: unknown;
    track_name?: unknown;
    release_name?: unknown;
    additional_info?: LbAdditionalInfo | null;
    mbid_mapping?: LbMbidMapping | null;
  } | null;
}
/** `GET /1/user/{user}/listens`: newest first; `oldest_listen_ts` is the user's oldest listen ever. */
interface LbListensPage {
  payload?: { count?: number; listens?: (LbListen | null)[]; oldest_listen_ts?: number; latest_listen_ts?: number };
}
interface LbValidateToken {
  valid?: boolean;
  user_name?: string;
}

export interface ListenBrainzCursor {
  v: 1;
  /** Whose listens the cursor follows: a token pasted again for another account starts over. */
  user: string;
  /** `listened_at` of the newest listen held, and the ids held at that very second (several listens can share one). */
  newest?: number;
  newestIds?: string[];
  /** Set while the first run's walk back in time was cut short: the next run goes on from here. */
  backfillBefore?: number;
  /**
   * Set while a walk forward was cut short by its page bound: the next run asks `min_ts` =
   * `forwardFrom` (instead of newest − lookback) and drops `forwardHeld`, the ids it already
   * has at the second just after it.
   */
  forwardFrom?: number;
  forwardHeld?: string[];
}

export interface ListenBrainzOptions {
  /** Listens per request; the API's maximum (MAX_ITEMS_PER_GET) is 1000. */
  pageSize?: number;
  /** Pages one run walks back in time before it stops and leaves the rest to the next run. */
  maxBackfillPages?: number;
  /** Pages one run walks forward before it stops and leaves the rest to the next run. */
  maxForwardPages?: number;
  /**
   * How far before the newest listen held each run starts reading again (seconds; default
   * 14 days). ListenBrainz stores listens with past timestamps (imports, scrobblers' offline
   * queues, its Spotify importer running late); min_ts = newest would never see them.
   * Re-read listens keep their id, and the Personal Server skips bodies whose digest is
   * unchanged, so the overlap costs requests, not writes.
   */
  lookbackSeconds?: number;
}

const SOURCE = 'listenbrainz';
const DEFAULT_LOOKBACK_SECONDS = 14 * 24 * 3600;
const ISRC = /^[A-Z]{2}[A-Z0-9]{3}\d{7}$/;

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
const nonNegativeInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
const seconds = (v: unknown): number | undefined => {
  const s = nonNegativeInt(v);
  return s === undefined ? undefined : s * 1000;
};

/** An ISRC as the catalog keeps it (upper case, no hyphens), or undefined when it is not one. */
function normalizeIsrc(value: unknown): string | undefined {
  const candidate = text(value)?.trim().toUpperCase().replace(/-/g, '');
  return candidate && ISRC.test(candidate) ? candidate : undefined;
}

/**
 * Who made it: the artist credits ListenBrainz matched (split, with their MusicBrainz ids)
 * when it has them, else the one `artist_name` string the scrobbler sent, with the artist
 * ids sent along only when there is exactly one (a list of ids cannot be paired with one
 * joined name like "A & B").
 */
function creatorsOf(listen: LbListen, artistName: string): { creators: string[]; creatorIds?: string[] } {
  const mapped = listen.track_metadata?.mbid_mapping?.artists;
  const names = Array.isArray(mapped) ? mapped.map((a) => text(a?.artist_credit_name)) : [];
  if (Array.isArray(mapped) && names.length > 0 && names.every((n) => n !== undefined)) {
    const ids = mapped.map((a) => text(a?.artist_mbid));
    return ids.every((id) => id !== undefined) ? { creators: names, creatorIds: ids } : { creators: names };
  }
  const sent = listen.track_metadata?.additional_info?.artist_mbids;
  const single = Array.isArray(sent) && sent.length === 1 ? text(sent[0]) : undefined;
  return single ? { creators: [artistName], creatorIds: [single] } : { creators: [artistName] };
}

/** The id a listen has across runs: ListenBrainz keeps one listen per (user, listened_at, recording_msid). */
export function listenId(listen: LbListen): string | undefined {
  const at = nonNegativeInt(listen.listened_at);
  const msid = text(listen.recording_msid);
  return at === undefined || !msid ? undefined : `${at}:${msid}`;
}

/** A ListenBrainz listen → a `media.play_event` record (libs/record-catalog). Throws, naming the field, on one it cannot read. */
export function normalizeListen(listen: LbListen): NormalizedRecord {
  const id = listenId(listen);
  const at = nonNegativeInt(listen.listened_at);
  if (!id || at === undefined) throw new Error('the listen has no listened_at or recording_msid');
  const meta = listen.track_metadata;
  const title = text(meta?.track_name);
  const artist = text(meta?.artist_name);
  if (!title) throw new Error(`listen ${id} has no track_name`);
  if (!artist) throw new Error(`listen ${id} has no artist_name`);
  const info = meta?.additional_info ?? {};
  const mapping = meta?.mbid_mapping ?? {};
  const playedAt = new Date(at * 1000).toISOString();
  return {
    type: 'media.play_event',
    externalId: id,
    occurredAt: playedAt,
    data: compact({
      source: SOURCE,
      // The MusicBrainz recording when ListenBrainz knows it (its mapping already prefers the
      // id the scrobbler sent), else the listen's own MessyBrainz id.
      trackId: text(mapping.recording_mbid) ?? text(info.recording_mbid) ?? text(listen.recording_msid),
      title,
      ...creatorsOf(listen, artist),
      kind: 'music',
      playedAt,
      // duration_played (seconds) is how long it played; duration_ms / duration the track's length
      // (all three documented in json.rst's additional_info table).
      durationMs: seconds(info.duration_played),
      itemDurationMs: nonNegativeInt(info.duration_ms) ?? seconds(info.duration),
      supplemental: false,
      collection: text(meta?.release_name),
      collectionId: text(info.release_mbid) ?? text(mapping.release_mbid),
      isrc: normalizeIsrc(info.isrc),
      device: text(info.media_player) ?? text(info.submission_client),
    }),
  };
}

/**
 * One page of listens → records, each unreadable entry (null, a field missing) reported
 * through `skip` and left out while its siblings are kept; listens whose ids are in `held`
 * are left out silently (the caller has them).
 */
export function listensToRecords(
  listens: readonly (LbListen | null)[],
  where: string,
  skip: (item: SkippedItem) => void,
  held: ReadonlySet<string> = new Set(),
): NormalizedRecord[] {
  return listens.flatMap((listen, index) => {
    const resource = `${where}[${index}]`;
    const id = listen && typeof listen === 'object' ? listenId(listen) : undefined;
    if (id !== undefined && held.has(id)) return [];
    if (listen === null || typeof listen !== 'object') {
      skip({ kind: 'malformed', resource, reason: 'the source listed null' });
      return [];
    }
    try {
      return [normalizeListen(listen)];
    } catch (error) {
      skip({ kind: 'malformed', resource, reason: error instanceof Error ? error.message : 'unreadable' });
      return [];
    }
  });
}

/** The `listened_at` of a listen whose id we could read (a skipped one still moves the walk on). */
const tsOf = (listen: LbListen | null): number | undefined => nonNegativeInt(listen?.listened_at);

/**
 * ListenBrainz: who the token belongs to (`/1/validate-token`), then the listening history.
 * The first run walks back in time from the newest listen with `max_ts` (bounded per run;
 * the next run resumes where it stopped); later runs walk forward with `min_ts`, which
 * returns the listens closest after it, starting `lookbackSeconds` before the newest listen
 * held: listens are often stored with past timestamps, and those are fetched as long as
 * they are no older than the lookback. Missed, by design: a listen backdated further than
 * that, and one deleted at ListenBrainz (finding either would mean re-reading the whole
 * history every run). Several listens can share one second, and both parameters are
 * exclusive, so each step asks one second past its edge and drops the ids it already has
 * at that second; a full page within one second is stepped past (the API cannot page inside
 * a second, so more than `pageSize` listens in one second cannot all be read). Both walks
 * are bounded in pages per run and stop when the source does not move on.
 * Rate limits (429 + X-RateLimit-Reset-In) are SourceHttp's.
 */
export class ListenBrainzConnector implements Connector {
  readonly integration = SOURCE;
  readonly produces = ['profile', 'media.play_event'] as const;
  private readonly pageSize: number;
  private readonly maxBackfillPages: number;
  private readonly maxForwardPages: number;
  private readonly lookbackSeconds: number;

  constructor(options: ListenBrainzOptions = {}) {
    this.pageSize = Math.min(1000, Math.max(1, options.pageSize ?? 1000));
    this.maxBackfillPages = Math.max(1, options.maxBackfillPages ?? 200);
    this.maxForwardPages = Math.max(1, options.maxForwardPages ?? 200);
    this.lookbackSeconds = Math.max(0, Math.floor(options.lookbackSeconds ?? DEFAULT_LOOKBACK_SECONDS));
  }

  async sync(ctx: SyncContext, cursor: unknown): Promise<ListenBrainzCursor> {
    const http = new SourceHttp(ctx.baseUrl, ctx.tokens, { ...ctx.http, authScheme: 'Token' }, ctx.signal);
    const user = await this.userName(http, ctx);
    await ctx.emit({
      upserts: [
        {
          type: 'profile',
          externalId: user,
          data: compact({
            source: SOURCE,
            id: user,
            handle: user,
            url: `https://listenbrainz.org/user/${encodeURIComponent(user)}/`,
          }),
        },
      ],
      deletes: [],
    });
    const prev = isListenBrainzCursor(cursor) && cursor.user === user ? cursor : undefined;
    const next: ListenBrainzCursor = { v: 1, user };
    if (prev?.newest !== undefined) {
      // A walk cut short goes on where it stopped; otherwise from the lookback's start, where
      // only with no lookback are the ids held at its first second known.
      const from =
        prev.forwardFrom !== undefined
          ? { minTs: prev.forwardFrom, held: prev.forwardHeld ?? [] }
          : {
              minTs: Math.max(0, prev.newest - this.lookbackSeconds - 1),
              held: this.lookbackSeconds === 0 ? (prev.newestIds ?? []) : [],
            };
      const fwd = await this.forward(http, ctx, user, from.minTs, from.held);
      // The newest held only moves up: a walk cut short, or listens deleted at the top, leave it.
      if (fwd.top === undefined || fwd.top < prev.newest) {
        next.newest = prev.newest;
        next.newestIds = prev.newestIds ?? [];
      } else {
        next.newest = fwd.top;
        next.newestIds =
          fwd.top === prev.newest ? [...new Set([...(prev.newestIds ?? []), ...fwd.topIds])] : fwd.topIds;
      }
      if (fwd.resume) {
        next.forwardFrom = fwd.resume.minTs;
        next.forwardHeld = fwd.resume.held;
      }
      if (prev.backfillBefore !== undefined) {
        const back = await this.backward(http, ctx, user, prev.backfillBefore);
        if (back.backfillBefore !== undefined) next.backfillBefore = back.backfillBefore;
      }
    } else {
      const back = await this.backward(http, ctx, user, undefined);
      Object.assign(next, back);
    }
    return next;
  }

  /** The token's user; a token ListenBrainz calls invalid (it answers 200 `valid: false`) is a refused credential. */
  private async userName(http: SourceHttp, ctx: SyncContext): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const res = await http.get<LbValidateToken>('/1/validate-token');
      const user = res.body?.valid === true ? text(res.body.user_name) : undefined;
      if (user) return user;
      if (res.body?.valid !== false || attempt > 0)
        throw new AppError('source_error', 'ListenBrainz did not say whose token this is');
      // An API key cannot be refreshed: the broker marks the connection for the person to paste a new one.
      await ctx.tokens.refresh(await ctx.tokens.current());
    }
  }

  private async page(http: SourceHttp, user: string, query: string) {
    const path = `/1/user/${encodeURIComponent(user)}/listens?count=${this.pageSize}${query}`;
    const res = await http.get<LbListensPage>(path);
    const payload = res.body?.payload;
    return { path, listens: Array.isArray(payload?.listens) ? payload.listens : [], oldest: payload?.oldest_listen_ts };
  }

  /**
   * Newest first from `start` (inclusive; undefined: from the newest), until the oldest
   * listen, the page bound, or a page that does not move the walk on.
   */
  private async backward(
    http: SourceHttp,
    ctx: SyncContext,
    user: string,
    start: number | undefined,
  ): Promise<Omit<ListenBrainzCursor, 'v' | 'user'>> {
    const out: Omit<ListenBrainzCursor, 'v' | 'user'> = {};
    // The exclusive max_ts of the next request, and the ids already emitted at the second
    // just below it: asking from one second past the edge returns them again, with any
    // sibling of that second the previous page had no room for.
    let maxTs = start === undefined ? undefined : start + 1;
    let edge = new Set<string>();
    for (let pages = 0; ; pages++) {
      if (pages >= this.maxBackfillPages) {
        if (maxTs !== undefined) out.backfillBefore = maxTs - 1;
        return out;
      }
      const { path, listens, oldest } = await this.page(http, user, maxTs === undefined ? '' : `&max_ts=${maxTs}`);
      await this.emitNew(ctx, listens, edge, path);
      const times = listens.map(tsOf).filter((t): t is number => t !== undefined);
      if (times.length === 0) return out;
      if (start === undefined && pages === 0) {
        out.newest = Math.max(...times);
        out.newestIds = idsAt(listens, out.newest);
      }
      const low = Math.min(...times);
      if (listens.length < this.pageSize || (oldest !== undefined && low <= oldest)) return out;
      if (maxTs === undefined || low < maxTs - 1) {
        edge = new Set(idsAt(listens, low));
        maxTs = low + 1;
      } else if (low === maxTs - 1) {
        // A whole page in the one second below max_ts: go on strictly before it.
        maxTs = low;
      } else {
        // Listens at or after max_ts: the source ignored it and would answer the same again.
        // The next run retries from here.
        out.backfillBefore = maxTs - 1;
        return out;
      }
    }
  }

  /**
   * Oldest first after `minTs` (exclusive; ListenBrainz answers min_ts with the listens
   * closest after it), dropping `held` (ids already held at the second minTs + 1). Stops at
   * a page that is not full, at a page that does not move the walk on (the source ignoring
   * min_ts, or a full page without a readable listened_at), or at the page bound, when
   * `resume` says where the next run goes on. `top` is the newest second read, `topIds` the
   * ids read there.
   */
  private async forward(
    http: SourceHttp,
    ctx: SyncContext,
    user: string,
    startMinTs: number,
    held: readonly string[],
  ): Promise<{ top?: number; topIds: string[]; resume?: { minTs: number; held: string[] } }> {
    let minTs = startMinTs;
    let edge = new Set(held);
    let top: number | undefined;
    let topIds = new Set<string>();
    for (let pages = 0; ; pages++) {
      if (pages >= this.maxForwardPages) return { top, topIds: [...topIds], resume: { minTs, held: [...edge] } };
      const { path, listens } = await this.page(http, user, `&min_ts=${minTs}`);
      await this.emitNew(ctx, listens, edge, path);
      const times = listens.map(tsOf).filter((t): t is number => t !== undefined);
      const high = times.length > 0 ? Math.max(...times) : undefined;
      if (high !== undefined && (top === undefined || high > top)) {
        top = high;
        topIds = new Set(idsAt(listens, high));
      } else if (high !== undefined && high === top) {
        idsAt(listens, high).forEach((id) => topIds.add(id));
      }
      if (listens.length < this.pageSize) return { top, topIds: [...topIds] };
      let nextMinTs = minTs;
      if (high !== undefined && high > minTs + 1) {
        edge = new Set(idsAt(listens, high));
        nextMinTs = high - 1;
      } else if (high === minTs + 1) {
        // A whole page in the one second after min_ts: go on strictly after it.
        edge = new Set();
        nextMinTs = high;
      }
      // Nothing after min_ts (the source ignored it) or nothing readable: asking again would
      // get the same page. The next run starts over from its lookback.
      if (nextMinTs === minTs) return { top, topIds: [...topIds] };
      minTs = nextMinTs;
    }
  }

  /** Emits a page's listens but those already held at the edge second, skipping unreadable ones. */
  private async emitNew(ctx: SyncContext, listens: (LbListen | null)[], edge: Set<string>, path: string) {
    const records = listensToRecords(listens, path, (item) => ctx.skip(item), edge);
    if (records.length > 0) await ctx.emit({ upserts: records, deletes: [] });
  }
}

function idsAt(listens: readonly (LbListen | null)[], ts: number): string[] {
  return listens.flatMap((l) => (l && tsOf(l) === ts ? [listenId(l)].filter((id): id is string => !!id) : []));
}

function isListenBrainzCursor(value: unknown): value is ListenBrainzCursor {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { v?: unknown }).v === 1 &&
    typeof (value as { user?: unknown }).user === 'string'
  );
}
