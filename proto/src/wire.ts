/**
 * Protobuf varints, lengths and timestamps, for the few messages written by hand on a hot path
 * (the shard's query reply, the gateway's audit events, the sync-worker's write requests): each
 * is checked byte for byte against toBinary by its own spec.
 */

/** Bytes a varint of this non-negative integer (below 2^53) takes. */
export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size += 1;
  }
  return size;
}

/** Writes a non-negative integer below 2^53 as a varint at `at`; returns where it ended. */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/** Writes an unsigned 64-bit integer (an int64 as its two's complement) as a varint. */
export function writeVarint64(out: Uint8Array, at: number, value: bigint): number {
  while (value >= 0x80n) {
    out[at++] = Number(value & 0x7fn) | 0x80;
    value >>= 7n;
  }
  out[at++] = Number(value);
  return at;
}

/** Bytes a length-delimited field with a one-byte tag takes; 0 when empty (proto3 leaves it out). */
export function lengthDelimitedSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

/**
 * Writes a string field with a one-byte tag at `at`; returns where it ended. `length` is its
 * UTF-8 length when already measured (Buffer.byteLength, which the size pass needs anyway).
 * An empty string is left out, as proto3 leaves out a default (lengthDelimitedSize counts it
 * 0), unless `always`: an element of a repeated field is sent whatever it holds. Buffer#write
 * encodes as toBinary's TextEncoder does: a lone surrogate as U+FFFD.
 */
export function writeStringField(
  out: Buffer,
  at: number,
  tag: number,
  value: string,
  length = Buffer.byteLength(value),
  always = false,
): number {
  if (length === 0 && !always) return at;
  out[at++] = tag;
  at = writeVarint(out, at, length);
  return at + out.write(value, at, length, 'utf8');
}

/**
 * A field's tag as written: one byte for fields 1 to 15, and for fields 16 to 2047 its two
 * varint bytes (e.g. `[0x80, 0x01]`, field 16, wire type 0).
 */
export type Tag = number | readonly [number, number];

/** Writes a tag at `at`; returns where it ended. */
export function writeTag(out: Uint8Array, at: number, tag: Tag): number {
  if (typeof tag === 'number') {
    out[at] = tag;
    return at + 1;
  }
  out[at] = tag[0];
  out[at + 1] = tag[1];
  return at + 2;
}

/**
 * writeStringField for a string not measured beforehand, into a buffer with room for it at
 * 3 bytes per UTF-16 unit (a message written into scratch space sized by its strings'
 * `.length`, then copied out, as the gateway's audit events are). A string short enough that
 * its length takes one varint byte whatever it holds is written first and its length put
 * before it: no separate pass to measure it. Empty strings as writeStringField.
 */
export function writeStringFieldUnmeasured(out: Buffer, at: number, tag: Tag, value: string, always = false): number {
  if (value.length === 0 && !always) return at;
  at = writeTag(out, at, tag);
  if (value.length * 3 < 0x80) {
    const end = writeUtf8(out, at + 1, value);
    out[at] = end - at - 1;
    return end;
  }
  return writeUtf8(out, writeVarint(out, at, Buffer.byteLength(value)), value);
}

/**
 * A string's UTF-8 bytes. Ids, names and codes are ASCII: a loop writes them faster than
 * Buffer#write's call into C++ does for strings this short; from the first other character
 * on, Buffer#write encodes the rest (lone surrogates as U+FFFD, as toBinary's TextEncoder).
 */
function writeUtf8(out: Buffer, at: number, value: string): number {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0x80) return at + out.write(i === 0 ? value : value.slice(i), at, 'utf8');
    out[at++] = unit;
  }
  return at;
}

/** Bytes an int64 varint of this integer takes: a negative one is its two's complement, ten bytes. */
export function int64VarintSize(value: number): number {
  return value < 0 ? 10 : varintSize(value);
}

/** Writes an integer (below 2^53 in size) as an int64 varint at `at`; returns where it ended. */
export function writeInt64Varint(out: Uint8Array, at: number, value: number): number {
  return value >= 0 ? writeVarint(out, at, value) : writeVarint64(out, at, BigInt.asUintN(64, BigInt(value)));
}

/** google.protobuf.Timestamp's fields (wire type 0, varint). */
const TIMESTAMP_SECONDS = 0x08; // int64 seconds = 1
const TIMESTAMP_NANOS = 0x10; // int32 nanos = 2

/** `timestampFromDate`'s seconds of a time in ms (nanos are the rest, never negative). */
function secondsOf(ms: number): number {
  return Math.floor(ms / 1000);
}

/** The Timestamp message of a time in ms, as `timestampFromDate` makes it: its own length (non-zero fields only). */
function timestampSize(ms: number): number {
  const seconds = secondsOf(ms);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  return (seconds === 0 ? 0 : 1 + int64VarintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
}

/** Bytes a Timestamp field (one-byte tag) of a time in ms takes; written even when both its fields are 0. */
export function timestampFieldSize(ms: number): number {
  const size = timestampSize(ms);
  return 1 + varintSize(size) + size;
}

/** Writes a Timestamp field (one-byte `tag`) of a time in ms at `at`, as `timestampFromDate` + toBinary would; returns where it ended. */
export function writeTimestampField(out: Uint8Array, at: number, tag: number, ms: number): number {
  const seconds = secondsOf(ms);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  out[at++] = tag;
  at = writeVarint(out, at, timestampSize(ms));
  if (seconds !== 0) {
    out[at++] = TIMESTAMP_SECONDS;
    at = writeInt64Varint(out, at, seconds);
  }
  if (nanos !== 0) {
    out[at++] = TIMESTAMP_NANOS;
    at = writeVarint(out, at, nanos);
  }
  return at;
}
