import { AppError } from '@context-gateway/errors';

/**
 * UTF-8's longest character. `Buffer.write` stops at the buffer's end and writes no part of a
 * character that does not fit whole, so with this many spare bytes a text longer than counted
 * always writes at least one byte past the counted size (at most 3 of a 4-byte character are
 * left unwritten).
 */
const SPARE = 4;

/** Bytes kept free before and after a page, for the fields of the reply it goes into. */
export interface Room {
  readonly before: number;
  readonly after: number;
}

/** Pages made with room, until the room is taken (once). */
const rooms = new WeakMap<Uint8Array, Room>();

/**
 * The parts written one after the other into one buffer of `size` bytes, their UTF-8 length
 * as the caller measured it. The buffer is allocated `SPARE` bytes longer and the bytes written
 * must come to exactly `size`: fewer (an overcount) would send allocUnsafe's stale memory, more
 * (an undercount) a truncated page — without the spare bytes, `write` and `copy` stop at the
 * end and an undercount ends at exactly `size` as well. Either is answered `internal`.
 *
 * With `room`, the page is written that many bytes into a buffer of its own with as many free
 * after it (at least `SPARE`), so its reply can be written around it instead of copying it
 * (query-reply.ts; page + reply of a 9 KB page measured 7.90 → 4.78 µs min, 8.63 → 5.75 median:
 * docs/perf/README.md, "The shard's query", seventh session).
 * Never from Buffer's shared pool: there the bytes around the page would be another Buffer's.
 */
export function writeParts(parts: readonly (string | Buffer)[], size: number, room?: Room): Buffer {
  const before = room?.before ?? 0;
  const after = Math.max(room?.after ?? 0, SPARE);
  const out = room ? Buffer.allocUnsafeSlow(before + size + after) : Buffer.allocUnsafe(size + SPARE);
  let at = before;
  for (const part of parts) at += typeof part === 'string' ? out.write(part, at) : part.copy(out, at);
  if (at - before !== size)
    throw new AppError('internal', `The page came to ${at - before} bytes, not the ${size} measured`);
  const page = out.subarray(before, before + size);
  if (room) rooms.set(page, { before, after });
  return page;
}

/**
 * The free bytes around `page` if writeParts made it with room, handed out once: whoever takes
 * them writes there (a reply that may still wait in the NATS client's outbound buffer), so a
 * second taker must not get them again.
 */
export function takeRoom(page: Uint8Array): Room | undefined {
  const room = rooms.get(page);
  rooms.delete(page);
  return room;
}
