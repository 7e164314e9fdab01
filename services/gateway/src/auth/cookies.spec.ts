import { describe, expect, it } from '@jest/globals';

import { COOKIES, parseCookies, serializeCookie } from './cookies.js';

describe('cookies', () => {
  it('are __Host- cookies: HttpOnly, Secure, Path=/ and no Domain, whatever the public URL', () => {
    const set = serializeCookie(COOKIES.session, 'cg_ss_abc', { maxAge: 60, sameSite: 'Lax' });
    expect(set).toBe('__Host-cg_session=cg_ss_abc; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure');
    for (const name of Object.values(COOKIES)) {
      const cookie = serializeCookie(name, 'v', { maxAge: 0, sameSite: 'Strict' });
      expect(cookie.startsWith('__Host-')).toBe(true);
      expect(cookie).not.toMatch(/Domain=/i);
    }
  });

  it('read back one value per name', () => {
    const cookies = parseCookies('a=1; __Host-cg_session=cg_ss_abc; b="q%20uoted"');
    expect(Object.fromEntries(cookies)).toEqual({ a: '1', '__Host-cg_session': 'cg_ss_abc', b: 'q uoted' });
  });

  it('refuse a name sent twice, whichever value comes first', () => {
    for (const header of [
      '__Host-cg_session=cg_ss_abc; __Host-cg_session=second',
      'a=1;a=1',
      'x=1; __Host-cg_csrf=a; y=2; __Host-cg_csrf=b',
    ]) {
      expect(() => parseCookies(header)).toThrow(expect.objectContaining({ code: 'malformed_request' }));
    }
  });
});
