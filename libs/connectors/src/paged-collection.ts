import { createHash } from 'node:crypto';

import type { NormalizedRecord, SkippedItem, SyncContext } from './connector.js';
import type { SourceHttp } from './source-http.js';

/** What we remember about one page of a listing between runs. */
export interface PageState {
  url: string;
  etag?: string;
  /** External ids the page held: a 304 means these are still there. */
  ids: string[];
  /** The page after it, remembered because a 304 carries no Link header. */
  next?: string;
}

export interface CollectionState {
  pages: PageState[];
  /**
   * Ids held before that the last walk did not see, not yet tombstoned: missing once is not
   * proof of a deletion (see syncCollection). Absent in cursors written before this rule.
   */
  missed?: string[];
}

export interface CollectionSpec<Item> {
  /** First page (path or URL). */
  firstPage: string;
  type: string;
  /** The items of a page body; a `null` entry (Spotify sends them) is skipped and reported. */
  items(body: unknown): (Item | null)[];
  /** Items a full page holds (`per_page`): a 304 on a full last page may hide a page added after it. */
  pageSize?: number;
  /** How a skipped entry is named in reports (`/me/playlists`). */
  resource?: string;
  /** The next page of a 200 answer (Link header, `next` field). */
  next(body: unknown, headers: Headers): string | undefined;
  /**
   * `next` reads the headers only (a Link header): the next page is asked for as soon as
   * this one's body has arrived, and this one is parsed while the source answers.
   */
  nextInHeaders?: boolean;
  normalize(item: Item): NormalizedRecord | NormalizedRecord[];
  /** Accept header for every page (a media type that adds fields). */
  accept?: string;
  /** Send If-None-Match with the page's stored ETag (the source supports conditional requests). */
  conditional: boolean;
}

/**
 * Walks a paginated listing and commits what changed: pages answered 304 cost nothing and
 * keep their ids; pages answered 200 are upserted. Listing in full is the only way a REST
 * source tells us about deletions, and conditional requests make the unchanged part of it free.
 *
 * An id is tombstoned only when two consecutive walks miss it. One miss is no proof: an item
 * removed from an earlier page while we are between pages shifts every later item left by
 * one, so the item that began the next page is never served in that walk although it still
 * exists (offset paging cannot tell). So when a walk misses an id we held, the listing is
 * walked again at once (conditionally: only pages that changed since the first walk cost a
 * body, and the page the shifted item moved to is one of them). An id the second walk misses
 * too is tombstoned in this same run, so a real deletion reaches the store in the run that
 * sees it. An id the first walk saw and the second did not (deleted between the two walks,
 * or shifted again) has been missed once: it is kept, remembered in `missed`, and settled by
 * the next run the same way. (A 304 cannot hide a live missed id: the page it is on now must
 * differ from that page as last read, or the walk would have seen the id there.)
 */
export async function syncCollection<Item>(
  http: SourceHttp,
  ctx: SyncContext,
  spec: CollectionSpec<Item>,
  previous: CollectionState | undefined,
): Promise<{ state: CollectionState; upserted: number; deleted: number }> {
  const before = new Map((previous?.pages ?? []).map((p) => [p.url, p]));
  const missedBefore = previous?.missed ?? [];
  const held = new Set([...[...before.values()].flatMap((p) => p.ids), ...missedBefore]);
  // What the first walk reported as skipped is not reported again by the second.
  const reported = new Set<string>();
  const skipKey = (item: SkippedItem) => `${item.kind}\u0000${item.resource}`;
  // And what it wrote is not written again: the second walk emits only what changed since.
  // Only a walk that may miss an id held before can be followed by a second one, so a first
  // sync (nothing held) keeps nothing of what it wrote: its pages are written as they come and
  // let go, whatever the account's size.
  const written = held.size > 0 ? new WrittenBodies() : undefined;
  const first = await walk(
    http,
    { ...ctx, skip: (item) => (reported.add(skipKey(item)), ctx.skip(item)) },
    spec,
    before,
    written ? { record: written } : {},
  );
  const unseen = [...held].filter((id) => !first.seen.has(id));
  if (unseen.length === 0) return { state: { pages: first.pages }, upserted: first.upserted, deleted: 0 };
  const second = await walk(
    http,
    { ...ctx, skip: (item) => (reported.has(skipKey(item)) ? undefined : ctx.skip(item)) },
    spec,
    new Map(first.pages.map((p) => [p.url, p])),
    { unchangedSince: written },
  );
  // Missed by both walks: gone. Seen by the first and missed by the second: missed once.
  const deletes = unseen.filter((id) => !second.seen.has(id)).map((externalId) => ({ type: spec.type, externalId }));
  const missed = [...first.seen].filter((id) => !second.seen.has(id));
  for (let i = 0; i < deletes.length; i += 500) await ctx.emit({ upserts: [], deletes: deletes.slice(i, i + 500) });
  return {
    state: { pages: second.pages, ...(missed.length > 0 ? { missed } : {}) },
    upserted: first.upserted + second.upserted,
    deleted: deletes.length,
  };
}

/** One walk through the listing from its first page: what it saw, page by page, and what it upserted. */
async function walk<Item>(
  http: SourceHttp,
  ctx: SyncContext,
  spec: CollectionSpec<Item>,
  before: Map<string, PageState>,
  emitted: {
    record?: WrittenBodies;
    unchangedSince?: WrittenBodies | undefined;
  } = {},
): Promise<{ pages: PageState[]; seen: Set<string>; upserted: number }> {
  const keyOf = (r: NormalizedRecord) => `${r.type}\u0000${r.externalId}`;
  const pages: PageState[] = [];
  const seen = new Set<string>();
  let upserted = 0;
  let url: string | undefined = spec.firstPage;
  const visited = new Set<string>();
  const fetchPage = (pageUrl: string, conditional = spec.conditional) => {
    const answer = http.receive<unknown>(pageUrl, {
      etag: conditional ? before.get(pageUrl)?.etag : undefined,
      ...(spec.accept ? { accept: spec.accept } : {}),
    });
    // A prefetched page's failure is raised when its turn comes, not as an unhandled rejection.
    answer.catch(() => undefined);
    return answer;
  };
  let prefetched: ReturnType<typeof fetchPage> | undefined;
  while (url && !visited.has(url)) {
    visited.add(url);
    const old = before.get(url);
    let res = await (prefetched ?? fetchPage(url));
    prefetched = undefined;
    // A source's ETag covers the body, not the Link header (GitHub's do). A full last page
    // answering 304 says nothing about a page added after it — trusting the stored "no
    // next" would miss that page for ever — so it is asked again unconditionally.
    if (res.status === 304 && old && !old.next && spec.pageSize !== undefined && old.ids.length >= spec.pageSize)
      res = await fetchPage(url, false);
    if (res.status === 304 && old) {
      old.ids.forEach((id) => seen.add(id));
      pages.push(old);
      url = old.next;
      continue;
    }
    // One page ahead: the next request is on the wire while this page is parsed, normalized
    // and written (the write may wait for room in the worker's pipeline). Still one request
    // at a time per account — this one's answer has arrived in full before the next is sent
    // — which is what GitHub asks of integrations ("make requests for a single user serially").
    // With the next page in the headers it is asked for before this body is parsed.
    const early = spec.nextInHeaders ? spec.next(undefined, res.headers) : undefined;
    if (early && !visited.has(early)) prefetched = fetchPage(early);
    const body = res.json();
    const next = spec.nextInHeaders ? early : spec.next(body, res.headers);
    if (!prefetched && next && !visited.has(next)) prefetched = fetchPage(next);
    const pageUrl = url;
    // Named only for an entry that is skipped: a URL parsed per record cost ~1 µs each.
    const where = (index: number) =>
      `${spec.resource ?? new URL(pageUrl, 'http://source').pathname}[${index}] (${pageUrl})`;
    const records: NormalizedRecord[] = [];
    spec.items(body).forEach((item, index) => {
      if (item === null || item === undefined) {
        ctx.skip({ kind: 'malformed', resource: where(index), reason: 'the source listed null' });
        return;
      }
      // One entry the normalizer cannot read (a field the source left out) is skipped, not the run.
      let normalized: NormalizedRecord | NormalizedRecord[];
      try {
        normalized = spec.normalize(item);
      } catch (error) {
        const reason = error instanceof Error ? error.message : 'unreadable';
        ctx.skip({ kind: 'malformed', resource: where(index), reason });
        return;
      }
      if (Array.isArray(normalized)) for (const r of normalized) records.push(r);
      else records.push(normalized);
    });
    const ids = records.filter((r) => r.type === spec.type).map((r) => r.externalId);
    ids.forEach((id) => seen.add(id));
    const earlier = emitted.unchangedSince;
    const changed = earlier ? records.filter((r) => !earlier.has(keyOf(r), r.data)) : records;
    if (emitted.record) for (const r of changed) emitted.record.add(keyOf(r), r.data);
    if (changed.length > 0) await ctx.emit({ upserts: changed, deletes: [] });
    upserted += changed.length;
    pages.push({ url, etag: res.etag, ids, ...(next ? { next } : {}) });
    url = next;
  }
  return { pages, seen, upserted };
}

/**
 * Bodies kept by reference, at most this many; past it, as digests. A second walk is rare (an
 * id held before must be missed), so the first walk of an incremental run keeps what it wrote
 * for nothing almost always: a reference costs no CPU, a digest ~1 ms per page of 100
 * records. References keep the bodies alive though, so their number is bounded: 2,000
 * normalized GitHub records are a few MB (unbounded, the first walk of an incremental run
 * over 100,000 repositories kept them all). A first sync keeps nothing (it holds no ids).
 */
const KEEP_BODIES = 2000;

/**
 * What the first walk of a run wrote, for the second walk to write only what changed since:
 * the bodies themselves (references) while there are at most KEEP_BODIES of them, then a
 * SHA-256 of each one's JSON (44 bytes), those kept so far included.
 */
class WrittenBodies {
  private bodies: Map<string, NormalizedRecord['data']> | undefined = new Map();
  private readonly digests = new Map<string, string>();

  add(key: string, data: NormalizedRecord['data']): void {
    if (this.bodies && this.bodies.size >= KEEP_BODIES && !this.bodies.has(key)) {
      for (const [k, kept] of this.bodies) this.digests.set(k, bodyDigest(kept));
      this.bodies = undefined;
    }
    if (this.bodies) this.bodies.set(key, data);
    else this.digests.set(key, bodyDigest(data));
  }

  /** Whether `data` is what was written under `key` (same JSON). */
  has(key: string, data: NormalizedRecord['data']): boolean {
    const kept = this.bodies?.get(key);
    if (kept !== undefined) return JSON.stringify(kept) === JSON.stringify(data);
    const digest = this.digests.get(key);
    return digest !== undefined && digest === bodyDigest(data);
  }
}

/**
 * What is remembered of a written body past KEEP_BODIES: SHA-256 of its JSON, enough to tell
 * whether the second walk sees it changed (a collision would leave a change unwritten, so
 * nothing weaker) in 44 bytes instead of the body's objects.
 */
function bodyDigest(data: NormalizedRecord['data']): string {
  return createHash('sha256').update(JSON.stringify(data)).digest('base64');
}
