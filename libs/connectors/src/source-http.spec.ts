import { describe, expect, it } from '@jest/globals';

import { nextLink, SourceHttp } from './source-http.js';

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

describe('nextLink', () => {
  it('finds rel="next" among links whose URLs contain commas', () => {
    const header =
      '<https://api.github.com/user/repos?affiliation=owner,collaborator&page=2>; rel="next", ' +
      '<https://api.github.com/user/repos?affiliation=owner,collaborator&page=5>; rel="last"';
    expect(nextLink(header)).toBe('https://api.github.com/user/repos?affiliation=owner,collaborator&page=2');
  });

  it('reads quoted, unquoted and multi-valued rels, and commas inside quoted parameters', () => {
    expect(nextLink('<https://x/a?p=1>; title="a, b"; rel="prev", <https://x/a?p=3>; rel=next')).toBe(
      'https://x/a?p=3',
    );
    expect(nextLink('<https://x/a?p=3>; rel="last next"')).toBe('https://x/a?p=3');
    expect(nextLink('<https://x/a?p=1>; rel="prev"')).toBeUndefined();
    expect(nextLink(null)).toBeUndefined();
  });
});
