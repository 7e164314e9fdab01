import { afterEach, describe, expect, it, jest } from '@jest/globals';
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
  const before = Buffer.from(bytes);
  try {
    return { value: parseJsonBody(bytes) };
  } catch (error) {
    // Refusals are JSON.parse's own SyntaxError, as before.
    expect(error).toBeInstanceOf(SyntaxError);
    return 'refused';
  } finally {
    // The body is left as it came, refused or not: a group's decode only borrows its delimiters.
    expect(bytes.equals(before)).toBe(true);
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
/**
 * Many small elements of the kind a scanner could trip on, after the generated ones: 1,000 of
 * about 70 bytes make a page past 64 KB, so it takes the split path and is cut in several groups.
 */
const filler = Array.from({ length: 1000 }, (_, n) => ({
  n,
  s: `a,b]"\\{c}[d:e` + 'f'.repeat(n % 40),
  // A `},{` inside a string and between nested objects: cuts looked for there must be refused.
  ...(n % 3 === 0 ? { t: [{ u: '},{', w: '}, {' }, { v: n }] } : {}),
}));
const spaces = fc.constantFrom('', ' ', '\n  ', '\t', '\r\n', ' \r');

/** A page with blank space about (and as indentation), and how many of its first bytes are the generated items. */
const page = fc.tuple(fc.array(item, { minLength: 0, maxLength: 30 }), spaces).map(([items, space]) => {
  const indent = space.length > 0 ? space : undefined;
  const text = `${space}${JSON.stringify([...items, ...filler], null, indent)}${space}`;
  // The same items stringify alike, up to the closing bracket, in front of the filler.
  const itemsLength = space.length + JSON.stringify(items, null, indent).length;
  return { text, itemsLength };
});

describe('parseJsonBody', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('gives what JSON.parse gives for large arrays of awkward values', () => {
    fc.assert(
      fc.property(page, ({ text }) => {
        const bytes = Buffer.from(text);
        expect(verdict(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 60 },
    );
  });

  it('refuses exactly what JSON.parse refuses when a large page is damaged anywhere', () => {
    // One byte changed, dropped or added, in the generated items' text or anywhere: a cut at a
    // wrong place must not be accepted.
    const edit = fc.tuple(
      fc.nat(),
      fc.boolean(),
      fc.constantFrom('drop', 'set', 'insert'),
      fc.constantFrom(...'[]{},"\\: 1a\r'),
    );
    fc.assert(
      fc.property(page, fc.array(edit, { minLength: 1, maxLength: 3 }), ({ text, itemsLength }, edits) => {
        let bytes = Buffer.from(text);
        for (const [at, inItems, kind, char] of edits) {
          const i = at % (inItems ? Math.min(itemsLength + 1, bytes.length) : bytes.length);
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
      `[${' '.repeat(20 * 1024)},${big}]`,
      `[${big},${' '.repeat(20 * 1024)}]`,
      `[${big},${' '.repeat(20 * 1024)},1]`,
      `[${big},,1]`,
      `[1,${' '.repeat(20 * 1024)},${big}]`,
    ])
      expect(verdict(Buffer.from(text))).toBe('refused');
    expect(verdict(Buffer.from(`[ ${big} , [ ] , { } ]`))).toEqual(reference(Buffer.from(`[ ${big} , [ ] , { } ]`)));
    expect(parseJsonBody(Buffer.from(`[${' '.repeat(70 * 1024)}]`))).toEqual([]);
  });

  it('parses a large array in a few groups of small strings', () => {
    // 200,000 integers, about 1.3 MB: neither one string past V8's large-object threshold
    // nor a JSON.parse call per element.
    const numbers = Array.from({ length: 200_000 }, (_, n) => n * 7);
    const bytes = Buffer.from(JSON.stringify(numbers));
    const parse = jest.spyOn(JSON, 'parse');
    expect(parseJsonBody(bytes)).toEqual(numbers);
    const lengths = parse.mock.calls.map(([text]) => text.length);
    expect(lengths.length).toBeGreaterThan(1);
    expect(lengths.length).toBeLessThan(numbers.length / 100);
    expect(Math.max(...lengths)).toBeLessThan(32 * 1024);
  });

  it('cuts a large array of objects between its elements natively, not inside them', () => {
    // Each element holds nested objects and strings with `},{` in them, and ends with an array
    // of objects (as an issue's labels): after most points in an element, the first `},{` is
    // inside it. The cuts between the elements are still found without a refused parse or a
    // scan, and the groups stay small.
    const elements = Array.from({ length: 3000 }, (_, n) => ({
      id: n,
      owner: { login: `o},{${n}`, site: { url: 'https://example.test/},{' } },
      text: 'x'.repeat(n % 200),
      labels: [{ name: 'a' }, { name: '},{"x":1' }, { name: 'c' }],
    }));
    for (const indent of [undefined, 2]) {
      const bytes = Buffer.from(JSON.stringify(elements, null, indent));
      const parse = jest.spyOn(JSON, 'parse');
      const count = { found: 0, refused: 0, scanned: 0 };
      expect(parseJsonBody(bytes, count)).toEqual(elements);
      const lengths = parse.mock.calls.map(([text]) => text.length);
      expect(lengths.length).toBeGreaterThan(10);
      expect(Math.max(...lengths)).toBeLessThan(64 * 1024);
      expect(parse.mock.results.filter((r) => r.type === 'throw')).toHaveLength(0);
      expect(count).toEqual({ found: lengths.length - 1, refused: 0, scanned: 0 });
      parse.mockRestore();
    }
  });

  it('scans for the cut when the one found natively is refused', () => {
    // The last field, an array of objects whose first key is the elements' own: a `},{"id"`
    // inside an element, taken for a cut now and then, refused by its group's parse.
    const elements = Array.from({ length: 3000 }, (_, n) => ({
      id: n,
      text: 'x'.repeat(n % 200),
      parts: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
    }));
    const bytes = Buffer.from(JSON.stringify(elements));
    const count = { found: 0, refused: 0, scanned: 0 };
    expect(parseJsonBody(bytes, count)).toEqual(elements);
    expect(count.refused).toBeGreaterThan(0);
    expect(count.scanned).toBe(count.refused);
  });

  it('parses an array of strings with one `},{` far ahead in linear time', () => {
    // About 2 MB of strings, the only `},{` near the end (inside a string): looked for only a
    // group's worth of bytes ahead, it is not found, parsed up to and refused on every pass.
    const strings = Array.from({ length: 40_000 }, (_, n) => `title ${n} ${'s'.repeat(40)}`);
    strings[39_990] = 'title },{ x';
    const bytes = Buffer.from(JSON.stringify(strings));
    const parse = jest.spyOn(JSON, 'parse');
    expect(parseJsonBody(bytes)).toEqual(strings);
    const lengths = parse.mock.calls.map(([text]) => text.length);
    expect(lengths.length).toBeLessThanOrEqual(Math.ceil(bytes.length / (16 * 1024)) + 2);
    expect(Math.max(...lengths)).toBeLessThan(64 * 1024);
    parse.mockRestore();
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
