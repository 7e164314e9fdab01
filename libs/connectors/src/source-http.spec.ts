import { describe, expect, it } from '@jest/globals';

import { SourceHttp } from './source-http.js';

const tokens = { current: () => Promise.resolve('token'), refresh: () => Promise.resolve('token2') };

describe('SourceHttp.url', () => {
  const http = new SourceHttp('https://api.github.com', tokens);

  it('resolves paths against the base and follows same-origin links', () => {
    expect(http.url('/user/repos?page=2')).toBe('https://api.github.com/user/repos?page=2');
    expect(http.url('https://api.github.com/user/repos?page=3')).toBe('https://api.github.com/user/repos?page=3');
  });

  it('refuses a pagination link to another origin, so the token is never sent there', () => {
    expect(() => http.url('https://evil.example/user/repos?page=2')).toThrow(
      expect.objectContaining({ code: 'source_error' }),
    );
    expect(() => http.url('http://api.github.com/user/repos')).toThrow(
      expect.objectContaining({ code: 'source_error' }),
    );
  });
});
