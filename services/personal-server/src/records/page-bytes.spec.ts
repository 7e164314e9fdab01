import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { takeRoom, writeParts } from './page-bytes.js';

function measured(parts: (string | Buffer)[]): number {
  return parts.reduce((sum, part) => sum + (typeof part === 'string' ? Buffer.byteLength(part) : part.length), 0);
}

function codeOf(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    return AppError.from(error).code;
  }
}

const part = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)),
);

describe('writeParts', () => {
  it('gives the parts joined, exactly their measured size', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 8 }), (parts) => {
        const expected = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
        const out = writeParts(parts, measured(parts));
        expect(out.length).toBe(expected.length);
        expect(out.equals(expected)).toBe(true);
      }),
    );
  });

  it('refuses a size counted short, even where the last character would end exactly at it', () => {
    // '[' and 'é]' are 4 bytes; counted as 3 (UTF-16 length), 'é' ends at byte 3 and ']' is cut.
    expect(codeOf(() => writeParts(['[', 'é]'], 3))).toBe('internal');
    // A 4-byte character straddling the counted end, and a Buffer copied past it.
    expect(codeOf(() => writeParts(['ab', '😀'], 3))).toBe('internal');
    expect(codeOf(() => writeParts(['ab', Buffer.from('cdefghij')], 3))).toBe('internal');
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 64 }), (parts, short) => {
        const size = measured(parts);
        fc.pre(size >= short);
        expect(codeOf(() => writeParts(parts, size - short))).toBe('internal');
      }),
    );
  });

  it('refuses a size counted long: the bytes not written would be stale memory', () => {
    expect(codeOf(() => writeParts(['[]'], 3))).toBe('internal');
  });

  it('with room, writes the same page into a buffer of its own with that room around it, handed out once', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 8 }), fc.nat(16), fc.nat(16), (parts, before, after) => {
        const expected = writeParts(parts, measured(parts));
        const out = writeParts(parts, measured(parts), { before, after });
        expect(out.equals(expected)).toBe(true);
        // Not a view into Buffer's shared pool: the bytes around it are the page's to write.
        expect(out.byteOffset).toBe(before);
        expect(out.buffer.byteLength).toBe(before + out.length + Math.max(after, 4));
        expect(takeRoom(out)).toEqual({ before, after: Math.max(after, 4) });
        expect(takeRoom(out)).toBeUndefined();
        expect(takeRoom(expected)).toBeUndefined();
      }),
    );
  });

  it('with room, still refuses a size that is not what was written', () => {
    const room = { before: 6, after: 96 };
    expect(codeOf(() => writeParts(['[', 'é]'], 3, room))).toBe('internal');
    expect(codeOf(() => writeParts(['ab', '😀'], 3, room))).toBe('internal');
    expect(codeOf(() => writeParts(['[]'], 3, room))).toBe('internal');
  });
});
