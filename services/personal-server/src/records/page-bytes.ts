import { AppError } from '@context-gateway/errors';

/**
 * UTF-8's longest character. `Buffer.write` stops at the buffer's end and writes no part of a
 * character that does not fit whole, so with this many spare bytes a text longer than counted
 * always writes at least one byte past the counted size (at most 3 of a 4-byte character are
 * left unwritten).
 */
const SPARE = 4;

/**
 * The parts written one after the other into one buffer of `size` bytes, their UTF-8 length
 * as the caller measured it. The buffer is allocated `SPARE` bytes longer and the bytes written
 * must come to exactly `size`: fewer (an overcount) would send allocUnsafe's stale memory, more
 * (an undercount) a truncated page — without the spare bytes, `write` and `copy` stop at the
 * end and an undercount ends at exactly `size` as well. Either is answered `internal`.
 */
export function writeParts(parts: readonly (string | Buffer)[], size: number): Buffer {
  const out = Buffer.allocUnsafe(size + SPARE);
  let at = 0;
  for (const part of parts) at += typeof part === 'string' ? out.write(part, at) : part.copy(out, at);
  if (at !== size) throw new AppError('internal', `The page came to ${at} bytes, not the ${size} measured`);
  return out.subarray(0, size);
}
