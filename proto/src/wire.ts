/**
 * Protobuf varints, for the few messages written by hand on a hot path (the shard's query
 * reply, the gateway's audit events): each is checked byte for byte against toBinary by
 * its own spec.
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
