import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { parseJsonBody } from './json-body.js';

/** JSON.parse's verdict on the same bytes: the value, or that it refused them. */
function reference(bytes: Buffer): { value: unknown } | 'refused' {
  try {
    return { value: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch {
    return 'refused';
  }
}

function verdict(bytes: Buffer): { value: unknown } | 'refused' {
  try {
    return { value: parseJsonBody(bytes) };
  } catch (error) {
    // Refusals are JSON.parse's own SyntaxError, as before.
    expect(error).toBeInstanceOf(SyntaxError);
    return 'refused';
  }
}

/** Strings full of what a byte scanner could trip on: quotes, backslashes, brackets, commas, non-ASCII. */
const tricky = fc.stringMatching(/^[a-z"\\[\]{},: \n\u00e9\u4e2d\u{1f600}]{0,12}$/u);
const { item } = fc.letrec<{ item: unknown }>((tie) => ({
  item: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tricky,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('item'), { maxLength: 4 }),
    fc.dictionary(tricky, tie('item'), { maxKeys: 4 }),
  ),
}));
/** A page: an array long enough (past 64 KB) to take the element-by-element path, with blank space about. */
const page = fc
  .tuple(fc.array(item, { minLength: 0, maxLength: 30 }), fc.constantFrom('', ' ', '\n  ', '\t'))
  .map(([items, space]) => {
    const padding = 'x'.repeat(70 * 1024);
    const text = JSON.stringify([...items, { padding }], null, space.length > 0 ? 1 : undefined);
    return `${space}${text}${space}`;
  });

describe('parseJsonBody', () => {
  it('gives what JSON.parse gives for large arrays of awkward values', () => {
    fc.assert(
      fc.property(page, (text) => {
        const bytes = Buffer.from(text);
        expect(verdict(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 60 },
    );
  });

  it('refuses exactly what JSON.parse refuses when a large page is damaged anywhere', () => {
    // One byte changed, dropped or added: a cut at a wrong place must not be accepted.
    const edit = fc.tuple(fc.nat(), fc.constantFrom('drop', 'set', 'insert'), fc.constantFrom(...'[]{},"\\: 1a'));
    fc.assert(
      fc.property(page, fc.array(edit, { minLength: 1, maxLength: 3 }), (text, edits) => {
        let bytes = Buffer.from(text);
        for (const [at, kind, char] of edits) {
          const i = at % bytes.length;
          const c = Buffer.from(char);
          if (kind === 'drop') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
          else if (kind === 'set') bytes = Buffer.concat([bytes.subarray(0, i), c, bytes.subarray(i + 1)]);
          else bytes = Buffer.concat([bytes.subarray(0, i), c, bytes.subarray(i)]);
        }
        expect(verdict(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses the near misses a top-level cut could let through', () => {
    const big = JSON.stringify('y'.repeat(70 * 1024));
    for (const text of [
      `[${big},]`,
      `[,${big}]`,
      `[${big}}`,
      `[${big}]]`,
      `[${big}],`,
      `[${big} 1]`,
      `[${big}`,
      `["${'z'.repeat(70 * 1024)}]`,
      `[${big},{"a":[1,2}]`,
      `[${big},{"a":"\\"}]`,
    ])
      expect(verdict(Buffer.from(text))).toBe('refused');
    expect(verdict(Buffer.from(`[ ${big} , [ ] , { } ]`))).toEqual(reference(Buffer.from(`[ ${big} , [ ] , { } ]`)));
    expect(parseJsonBody(Buffer.from(`[${' '.repeat(70 * 1024)}]`))).toEqual([]);
  });

  it('parses objects and small bodies whole, as before', () => {
    const object = Buffer.from(
      JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ i, s: 'x'.repeat(40) })) }),
    );
    expect(parseJsonBody(object)).toEqual(JSON.parse(object.toString()));
    expect(parseJsonBody(Buffer.from('[1,"a,b"]'))).toEqual([1, 'a,b']);
    expect(() => parseJsonBody(Buffer.from('[1,]'))).toThrow(SyntaxError);
  });
});
