import { AppError } from '@context-gateway/errors';
import { EncodedReply } from '@context-gateway/messaging';
import {
  lengthDelimitedSize,
  QueryRecordsResponseSchema,
  timestampFieldSize,
  writeTimestampField,
  writeVarint,
} from '@context-gateway/proto';

import { type Room, takeRoom } from './page-bytes.js';
import type { QueryPage } from './records.service.js';

/** Wire tags of QueryRecordsResponse (field number << 3 | wire type 2, length-delimited). */
const RECORDS_JSON = 0x0a; // bytes records_json = 1
const NEXT_CURSOR = 0x12; // string next_cursor = 2
const SYNCED_AT = 0x1a; // google.protobuf.Timestamp synced_at = 3

/**
 * What the query path leaves free around its page (writeParts), for the reply's fields: the
 * page's tag and length before it (a varint of a length < 2^35 is at most 5 bytes), the cursor
 * and the sync time after it (a cursor is a few dozen bytes, a Timestamp field at most 24). A
 * reply that does not fit copies the page, as before.
 */
export const QUERY_REPLY_ROOM: Room = { before: 6, after: 96 };

/**
 * `ps.v1.shard.<n>.query`'s reply, written around the page where the page was made with room
 * for it (QUERY_REPLY_ROOM), else into one buffer of its exact size with the page copied once.
 * The generic encoder (`toBinary`) grew a zeroed buffer to the power of two past the page and
 * sliced the result out, ~6 % of a shard's CPU under `pnpm bench:query` for three fields.
 * Byte for byte what `toBinary(QueryRecordsResponseSchema, …)` writes —
 * fields in number order, defaults (an empty page, no cursor, no sync time) left out, the
 * sync time as `timestampFromDate` makes it — which query-reply.spec.ts checks.
 */
export function encodeQueryReply(page: QueryPage): EncodedReply {
  const json = page.recordsJson;
  const cursorLength = Buffer.byteLength(page.nextCursor);
  const syncedMs = page.syncedAt?.getTime();
  const size =
    lengthDelimitedSize(json.length) +
    lengthDelimitedSize(cursorLength) +
    (syncedMs === undefined ? 0 : timestampFieldSize(syncedMs));
  const head = lengthDelimitedSize(json.length) - json.length;
  const room = takeRoom(json);
  // The page in place: the reply is the page's own buffer from its tag to the sync time.
  const inPlace =
    room !== undefined && json.length > 0 && room.before >= head && room.after >= size - head - json.length;
  const out = inPlace ? Buffer.from(json.buffer, json.byteOffset - head, size) : Buffer.allocUnsafe(size);
  let at = 0;
  if (json.length > 0) {
    out[at++] = RECORDS_JSON;
    at = writeVarint(out, at, json.length);
    at += inPlace ? json.length : json.copy(out, at);
  }
  if (cursorLength > 0) {
    out[at++] = NEXT_CURSOR;
    at = writeVarint(out, at, cursorLength);
    at += out.write(page.nextCursor, at, 'utf8');
  }
  if (syncedMs !== undefined) at = writeTimestampField(out, at, SYNCED_AT, syncedMs);
  // allocUnsafe's buffer holds whatever memory it was given: a byte not written would send
  // another request's data. The spec proves the sizes agree; this keeps a slip from leaking.
  // (In place, the page's bytes are where `at` says only if the head came to `head` bytes,
  // which the same check proves: the head and tail sizes are those counted in `size`.)
  if (at !== size) throw new AppError('internal', `The query reply was ${at} bytes written of ${size}`);
  return new EncodedReply(QueryRecordsResponseSchema, out);
}
