import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { packBytes } from './packed-bytes.js';

/** What SQL's `substring(bytes FROM at FOR length)` gives (1-based), null for a null position. */
function substring(bytes: Buffer, at: number | null, length: number | null): Buffer | null {
  if (at === null || length === null) return null;
  return bytes.subarray(at - 1, at - 1 + length);
}

describe('packBytes', () => {
  it('gives each value back at its offset, nulls as null and empty buffers as empty', () => {
    const values = [Buffer.from('ab'), null, Buffer.alloc(0), Buffer.from('cde'), null, Buffer.from('f')];
    const packed = packBytes(values);
    expect(packed.bytes).toEqual(Buffer.from('abcdef'));
    expect(packed.at).toEqual([1, null, 3, 3, null, 6]);
    expect(packed.lengths).toEqual([2, null, 0, 3, null, 1]);
    expect(values.map((_, i) => substring(packed.bytes, packed.at[i] ?? null, packed.lengths[i] ?? null))).toEqual(
      values,
    );
  });

  it('round-trips any mix of byte strings, empty ones and nulls', () => {
    const value = fc.option(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      { nil: null, freq: 3 },
    );
    fc.assert(
      fc.property(fc.array(value, { maxLength: 30 }), (values) => {
        const packed = packBytes(values);
        expect(packed.at).toHaveLength(values.length);
        expect(packed.lengths).toHaveLength(values.length);
        expect(packed.bytes).toHaveLength(values.reduce((n, v) => n + (v?.length ?? 0), 0));
        expect(values.map((_, i) => substring(packed.bytes, packed.at[i] ?? null, packed.lengths[i] ?? null))).toEqual(
          values,
        );
      }),
    );
  });
});
