import { describe, expect, it } from '@jest/globals';

import { id, queryInt } from './input.js';

describe('id', () => {
  it('accepts a UUID only in the lower case the API hands out', () => {
    expect(id().safeParse('6f9619ff-8b86-4011-b42d-00c04fc964ff').success).toBe(true);
    expect(id().safeParse('6F9619FF-8B86-4011-B42D-00C04FC964FF').success).toBe(false);
    expect(id().safeParse('6f9619ff8b864011b42d00c04fc964ff').success).toBe(false);
  });
});

describe('queryInt', () => {
  const limit = queryInt(1, 500);

  it('reads decimal digits, within range', () => {
    expect(limit.parse('16')).toBe(16);
    expect(limit.parse('500')).toBe(500);
    expect(limit.safeParse('501').success).toBe(false);
    expect(limit.safeParse('0').success).toBe(false);
  });

  it('refuses what Number() would read as something else', () => {
    for (const spelled of ['0x10', '1e1', ' 16', '16 ', '+16', '-1', '1.0', '', ['1', '2']]) {
      expect(limit.safeParse(spelled).success).toBe(false);
    }
  });
});
