import type { UnknownField } from '@bufbuild/protobuf';
import { type BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { Timestamp } from '@bufbuild/protobuf/wkt';

/**
 * The pieces the hand decoders (query-records.ts, audit-event.ts) share: each reads a field
 * as fromBinary reads it, except that a known field with the wrong wire type is refused
 * (fromBinary reads it as the declared type, turning garbage into some value), and so is a
 * nested message whose fields run past its length (fromBinary reads on).
 */

/** fromBinary's nesting budget (recursionLimit 100), less the levels a skipped group sits in. */
const RECURSION_LIMIT = 100;

const TIMESTAMP_TYPE = 'google.protobuf.Timestamp';

/**
 * The hand decoders' own refusals, beyond fromBinary's: a known field with the wrong wire
 * type, a nested message whose fields run past its length. Its own class, so the specs tell
 * these from BinaryReader's errors (whose messages mention wire types too).
 */
export class StricterThanFromBinaryError extends Error {
  override readonly name = 'StricterThanFromBinaryError';
}

/** Refuses a known field sent with another wire type than its declaration's. */
export function expectWireType(fieldNo: number, wireType: WireType, expected: WireType): void {
  if (wireType !== expected)
    throw new StricterThanFromBinaryError(
      `field ${fieldNo} has wire type ${WireType[wireType]}, expected ${WireType[expected]}`,
    );
}

/** A length-delimited proto3 string (UTF-8 checked, as fromBinary does for proto3). */
export function readString(reader: BinaryReader, fieldNo: number, wireType: WireType): string {
  expectWireType(fieldNo, wireType, WireType.LengthDelimited);
  return reader.string(true);
}

/** An int64 varint, as a bigint (BinaryReader's type says string too, for runtimes without BigInt). */
export function readInt64(reader: BinaryReader, fieldNo: number, wireType: WireType): bigint {
  expectWireType(fieldNo, wireType, WireType.Varint);
  return BigInt(reader.int64());
}

/**
 * Skips a field this decoder does not know, kept as fromBinary keeps it (`$unknown`).
 * `depth`: the message's own nesting level (1 for the top message).
 */
export function skipUnknown(
  reader: BinaryReader,
  fieldNo: number,
  wireType: WireType,
  depth: number,
  unknown: UnknownField[] | undefined,
): UnknownField[] {
  const data = reader.skip(wireType, fieldNo, RECURSION_LIMIT - depth);
  const fields = unknown ?? [];
  fields.push({ no: fieldNo, wireType, data });
  return fields;
}

/** Where a nested message field's body ends (read after its tag, wire type checked): its length, bounds checked. */
export function nestedEnd(reader: BinaryReader): number {
  const length = reader.uint32();
  const end = reader.pos + length;
  if (end > reader.len) throw new RangeError('premature EOF');
  return end;
}

/** fromBinary does not check that a nested message's fields end where its length says: refused here. */
export function expectNestedEnd(reader: BinaryReader, end: number, name: string): void {
  if (reader.pos !== end) throw new StricterThanFromBinaryError(`a field runs past the end of ${name}`);
}

/**
 * A google.protobuf.Timestamp field's body (after its tag), merged into `into` when given
 * (a repeated message field merges into the one before, as fromBinary does). `depth`: the
 * Timestamp's own nesting level.
 */
export function readTimestamp(
  reader: BinaryReader,
  into: Timestamp | undefined,
  name: string,
  depth: number,
): Timestamp {
  const timestamp: Timestamp = into ?? { $typeName: TIMESTAMP_TYPE, seconds: 0n, nanos: 0 };
  const end = nestedEnd(reader);
  let unknown = timestamp.$unknown;
  while (reader.pos < end) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        timestamp.seconds = readInt64(reader, fieldNo, wireType);
        break;
      case 2:
        expectWireType(fieldNo, wireType, WireType.Varint);
        timestamp.nanos = reader.int32();
        break;
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, depth, unknown);
    }
  }
  expectNestedEnd(reader, end, name);
  if (unknown) timestamp.$unknown = unknown;
  return timestamp;
}
