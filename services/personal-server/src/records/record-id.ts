import { randomUUID } from 'node:crypto';

/** UUIDv7's timestamp field is 48 bits of Unix milliseconds (RFC 9562 §5.7). */
const MAX_MS = 2 ** 48 - 1;

/**
 * New record ids for one write: UUIDs of version 7 (RFC 9562), the write's time in
 * milliseconds in the first 48 bits and 74 random bits after it, instead of random
 * version 4 ones. `records_pkey` is a b-tree on the id: random ids put every new row on a
 * random leaf page (Postgres dirties, splits and logs pages all over the index), ids that
 * start with the time put a write's rows side by side at the index's right edge. Measured
 * on the records table with 500-row COPYs: 8–10 against 10–15 ms of a backend's CPU per
 * 1,000 new rows (docs/perf/README.md, seventh session), and the gap grows with the table.
 *
 * Nothing reads the time back: ids are still opaque, unique (74 random bits; the unique
 * key, not the id, tells records apart) and only ever compared for equality; pages are
 * ordered by version. What an id now shows, when the record was first stored, an app can
 * already tell from a record's `updatedAt` until it changes.
 *
 * A time outside the field (before 1970 or after the year 10889, a test clock's) is
 * clamped into it: the time only places the row in the index.
 */
export function recordIdMaker(nowMs: number): () => string {
  const ms = Math.min(Math.max(Math.floor(nowMs), 0), MAX_MS);
  const hex = ms.toString(16).padStart(12, '0');
  // `tttttttt-tttt-7`: the time, and the version digit where randomUUID() has its `4`;
  // randomUUID()'s variant bits (its 20th character) are version 7's too.
  const head = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7`;
  return () => head + randomUUID().slice(15);
}
