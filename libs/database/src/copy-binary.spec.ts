import { describe, expect, it } from '@jest/globals';

import { type CopyColumnType, CopyFieldsEncoder, encodeCopyBinary } from './copy-binary.js';

const TYPES: CopyColumnType[] = ['uuid', 'timestamptz', 'text', 'int8', 'bytea'];

/** Rows of every size from a few bytes to far past any first guess; multi-byte text, NULLs. */
function rows(count: number): unknown[][] {
  return Array.from({ length: count }, (_, i) => [
    `0b0e6a3c-1111-4a7b-9c55-${String(i).padStart(12, '0')}`,
    new Date(Date.UTC(2026, 11, 7, 0, 0, 0, i)),
    i % 5 === 0 ? null : `é€😀 row ${i} `.repeat(i % 40),
    i,
    new Uint8Array(i % 7 === 0 ? 9_000 : i % 13).fill(i % 256),
  ]);
}

/** Row i's fields as encodeCopyBinary writes them (after its 16-bit field count): the reference. */
function referenceFields(row: readonly unknown[]): Buffer {
  const whole = encodeCopyBinary(TYPES, [row]);
  // 19-byte header, 2-byte field count, the fields, 2-byte trailer.
  return whole.subarray(19 + 2, whole.length - 2);
}

describe('CopyFieldsEncoder', () => {
  it('grows its buffer across its first guess without losing or shifting a byte, whatever that guess was', () => {
    const input = rows(300);
    const expected = input.map(referenceFields);
    // From the 64-byte floor, a guess several rows too small, and one large enough never to grow.
    for (const guess of [1, 5_000, 50_000_000]) {
      const encoder = new CopyFieldsEncoder(TYPES, guess);
      for (const row of input) encoder.add(row);
      const { bytes, ends } = encoder.finish();
      expect(ends).toHaveLength(input.length);
      expect(Buffer.compare(Buffer.from(bytes), Buffer.concat(expected))).toBe(0);
      expected.forEach((fields, i) => {
        expect(Buffer.compare(Buffer.from(bytes.subarray(ends[i - 1] ?? 0, ends[i])), fields)).toBe(0);
      });
    }
  });

  it('leaves nothing of a refused row behind, before or after growing', () => {
    const encoder = new CopyFieldsEncoder(TYPES, 1);
    const [first, second] = rows(2);
    encoder.add(first!);
    expect(() => encoder.add(['not-a-uuid', new Date(), 'x', 1, new Uint8Array(100_000)])).toThrow(
      '(uuid) cannot take',
    );
    encoder.add(second!);
    const { bytes, ends } = encoder.finish();
    expect(Buffer.compare(Buffer.from(bytes), Buffer.concat([referenceFields(first!), referenceFields(second!)]))).toBe(
      0,
    );
    expect(ends).toHaveLength(2);
  });

  it('hands over a buffer of its own after growing, which moves to another thread', () => {
    const encoder = new CopyFieldsEncoder(TYPES, 1);
    for (const row of rows(50)) encoder.add(row);
    const { bytes } = encoder.finish();
    const copy = Buffer.from(bytes);
    expect(bytes.byteOffset).toBe(0);
    const moved = structuredClone(bytes, { transfer: [bytes.buffer as ArrayBuffer] });
    // Transferred, not copied: the original is detached.
    expect(bytes.buffer.byteLength).toBe(0);
    expect(Buffer.compare(Buffer.from(moved), copy)).toBe(0);
  });
});
