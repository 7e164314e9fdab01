import { describe, expect, it } from '@jest/globals';

import { compact } from './compact.js';

describe('compact', () => {
  it('drops null, undefined and empty strings and keeps the other keys in their order', () => {
    const out = compact({ z: 1, a: null, m: '', b: undefined, c: false, d: 0, e: 'x' });
    expect(Object.keys(out)).toEqual(['z', 'c', 'd', 'e']);
    expect(out).toEqual({ z: 1, c: false, d: 0, e: 'x' });
  });

  it("ignores inherited enumerable properties (only the body's own keys)", () => {
    const proto = { inherited: 'from the prototype' };
    const body = Object.assign(Object.create(proto) as Record<string, unknown>, { own: 'kept' });
    expect(compact(body)).toEqual({ own: 'kept' });
    expect(Object.keys(compact(body))).toEqual(['own']);
  });
});
