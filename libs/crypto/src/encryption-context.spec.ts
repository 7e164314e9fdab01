import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { encodeContext } from './encryption-context.js';

describe('encodeContext', () => {
  it('gives the same bytes whatever the field order', () => {
    expect(encodeContext({ org: 'o1', user: 'u1', connection: 'c1' })).toEqual(
      encodeContext({ connection: 'c1', user: 'u1', org: 'o1' }),
    );
  });

  it('cannot be confused by separators inside values', () => {
    expect(encodeContext({ a: 'b|c' })).not.toEqual(encodeContext({ a: 'b', c: '' }));
    expect(encodeContext({ a: 'b=c' })).not.toEqual(encodeContext({ 'a=b': 'c' }));
    expect(encodeContext({})).not.toEqual(encodeContext({ '': '' }));
  });

  it('maps different contexts to different bytes (injective)', () => {
    const text = fc.string({ unit: 'binary', maxLength: 6 });
    const context = fc.dictionary(text, text, { maxKeys: 4 });
    fc.assert(
      fc.property(context, context, (a, b) => {
        const same = JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
        expect(encodeContext(a).equals(encodeContext(b))).toBe(same);
      }),
    );
  });

  it('orders fields by UTF-8 bytes, as another language would', () => {
    // UTF-16 puts the emoji (0xD83D…) first; UTF-8 puts U+FFFF (0xEF…) before it (0xF0…).
    const encoded = encodeContext({ '\u{1F600}': 'x', '\uffff': 'y' });
    expect(encoded.subarray(8, 11).toString('utf8')).toBe('\uffff');
  });

  it('refuses a field that is not a string instead of binding "undefined"', () => {
    const untyped = { org: 'o1', user: undefined } as unknown as Record<string, string>;
    expect(() => encodeContext(untyped)).toThrow(expect.objectContaining({ code: 'internal' }));
  });
});
