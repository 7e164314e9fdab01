import { describe, expect, it } from '@jest/globals';

import { safeReturnTo } from './return-to.js';

describe('return_to after sign-in', () => {
  it.each(['/v1/connect/sessions/abc/consent?x=1', '/', '/v1/auth/signin#done'])(
    'keeps same-origin path %s',
    (path) => {
      expect(safeReturnTo(path)).toBe(path);
    },
  );

  it.each([
    'https://evil.example/',
    '//evil.example/x',
    '/\\evil.example',
    '\\\\evil.example',
    '/\tevil',
    ' /x',
    'javascript:alert(1)',
    '/.//evil.example',
    '/a/..//evil.example',
    '/%2e//evil.example',
    '/./x',
    'evil.example',
    '',
    `/${'a'.repeat(2_001)}`,
  ])('refuses %j', (value) => {
    expect(safeReturnTo(value)).toBeUndefined();
  });
});
