import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { expect } from '@jest/globals';
import fc from 'fast-check';

import { StricterThanFromBinaryError } from '../wire-read.js';

/**
 * What the hand codecs' specs (query-records.spec.ts, audit-event.spec.ts) hold each against
 * protobuf-es with: generated text and unknown fields, corruptions of valid bytes, and the
 * decoders' contract (as strict as fromBinary, equal where both accept).
 */

/** Bytes as hex, 32 to a line: a mismatch shows as the lines that differ. */
export const hexLines = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex').replace(/.{64}/g, '$&\n');

/** What a decoder does with `bytes`: its message, or what it threw. */
function outcome<T>(decode: (bytes: Uint8Array) => T, bytes: Uint8Array): { ok: T } | { threw: unknown } {
  try {
    return { ok: decode(bytes) };
  } catch (error) {
    return { threw: error };
  }
}

/**
 * The decoders' contract against fromBinary on any input: never accept what fromBinary
 * refuses, and where both accept, return the same message. Where only the hand decoder
 * refuses, it must be for its documented extra strictness (StricterThanFromBinaryError: a
 * known field with the wrong wire type, or a nested message whose fields run past its
 * length); any other refusal is a bug.
 */
export function expectAsStrictAndEqual<T>(
  hand: (bytes: Uint8Array) => T,
  reference: (bytes: Uint8Array) => T,
  bytes: Uint8Array,
) {
  const mine = outcome(hand, bytes);
  const theirs = outcome(reference, bytes);
  if ('threw' in theirs) expect('threw' in mine).toBe(true);
  else if ('ok' in mine) expect(mine.ok).toEqual(theirs.ok);
  else expect(mine.threw).toBeInstanceOf(StricterThanFromBinaryError);
}

/** Any UTF-16 code unit, lone surrogates included (UTF-8 writes each as U+FFFD, as toBinary does). */
export const codeUnit = fc.oneof(
  fc.integer({ min: 0, max: 0x7f }).map((unit) => String.fromCharCode(unit)),
  fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
);

type Unknown = [number, WireType, unknown];

/**
 * An unknown field of every wire type, groups nested a few deep. `minNo`: the message's
 * first free field number, the one its next schema version would use: numbers from there
 * on, the first few (one-byte tags, for small messages) often.
 */
export function unknownField(minNo: number): fc.Arbitrary<Unknown> {
  const no = (max: number) => fc.oneof(fc.integer({ min: minNo, max: minNo + 2 }), fc.integer({ min: minNo, max }));
  return fc.letrec<{ field: Unknown }>((tie) => ({
    field: fc.oneof(
      { depthSize: 'small' },
      fc.tuple(no(2 ** 29 - 1), fc.constant(WireType.Varint), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      fc.tuple(no(5000), fc.constant(WireType.Bit32), fc.nat()),
      fc.tuple(no(5000), fc.constant(WireType.Bit64), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      fc.tuple(no(5000), fc.constant(WireType.LengthDelimited), fc.uint8Array({ maxLength: 20 })),
      fc.tuple(no(5000), fc.constant(WireType.StartGroup), fc.array(tie('field'), { maxLength: 3 })),
    ),
  })).field;
}

function writeUnknown(writer: BinaryWriter, [no, wireType, value]: Unknown): void {
  writer.tag(no, wireType);
  switch (wireType) {
    case WireType.Varint:
      writer.uint64(value as bigint);
      break;
    case WireType.Bit32:
      writer.fixed32(value as number);
      break;
    case WireType.Bit64:
      writer.fixed64(value as bigint);
      break;
    case WireType.LengthDelimited:
      writer.bytes(value as Uint8Array);
      break;
    default:
      for (const inner of value as Unknown[]) writeUnknown(writer, inner);
      writer.tag(no, WireType.EndGroup);
  }
}

export const unknownBytes = (fields: Unknown[]): Uint8Array => {
  const writer = new BinaryWriter();
  for (const field of fields) writeUnknown(writer, field);
  return writer.finish();
};

/** `depth` unknown groups (field 100), each inside the one before: fromBinary's nesting budget is 100 levels. */
export const nestedGroups = (depth: number): Uint8Array =>
  // Field 100's start-group tag (100 << 3 | 3) and end-group tag (| 4), as two-byte varints.
  Buffer.concat([Buffer.from('a306'.repeat(depth), 'hex'), Buffer.from('a406'.repeat(depth), 'hex')]);

/** `bytes` with `extra` (unknown fields) inserted at byte offset `at`, a field boundary (see boundaries). */
export function withUnknown(bytes: Uint8Array, extra: Uint8Array, at: number): Uint8Array {
  return Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)]);
}

/** Field boundaries of a message of varint and length-delimited fields: where another field may go. */
export function boundaries(bytes: Uint8Array): number[] {
  const out = [0];
  let at = 0;
  const view = { buf: bytes, pos: 0 };
  const varint = (): number => {
    let shift = 0;
    let value = 0;
    for (;;) {
      // Past the end reads as 0: the loop ends; the bytes are toBinary's own, never cut short.
      const b = view.buf[view.pos++] ?? 0;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      shift += 7;
    }
  };
  while (at < bytes.length) {
    view.pos = at;
    const tag = varint();
    // The length is read before pos is: `pos += varint()` would add it to the pos before the length.
    const length = (tag & 7) === (WireType.Varint as number) ? (varint(), 0) : varint();
    view.pos += length;
    at = view.pos;
    out.push(at);
  }
  return out;
}

/** Corruptions of valid bytes: a byte changed, truncated, a byte inserted or dropped. */
export function mutate(bytes: Uint8Array, kind: number, position: number, value: number): Uint8Array {
  const at = bytes.length === 0 ? 0 : position % bytes.length;
  const copy = Buffer.from(bytes);
  switch (kind) {
    case 0:
      if (copy.length > 0) copy[at] = value;
      return copy;
    case 1:
      return copy.subarray(0, at);
    case 2:
      return Buffer.concat([copy.subarray(0, at), Buffer.from([value]), copy.subarray(at)]);
    default:
      return Buffer.concat([copy.subarray(0, at), copy.subarray(at + 1)]);
  }
}
export const mutation = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.nat(), fc.integer({ min: 0, max: 255 }));
