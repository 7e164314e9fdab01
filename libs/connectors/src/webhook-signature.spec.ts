import { describe, expect, it } from '@jest/globals';

import { nextLink } from './source-http.js';
import { signGithubPayload, verifyGithubSignature } from './webhook-signature.js';

describe('GitHub webhook signatures', () => {
  const body = Buffer.from('{"action":"opened","issue":{"id":1}}');
  const secret = 'webhook-secret-of-this-app-0123456789';

  it('accepts the signature GitHub computes over the raw body', () => {
    expect(verifyGithubSignature(secret, body, signGithubPayload(secret, body))).toBe(true);
  });

  it('rejects a changed body, another secret, a missing or malformed header', () => {
    const sig = signGithubPayload(secret, body);
    expect(verifyGithubSignature(secret, Buffer.from('{"action":"closed","issue":{"id":1}}'), sig)).toBe(false);
    const other = 'webhook-secret-of-another-app-0123456789';
    expect(verifyGithubSignature(other, body, sig)).toBe(false);
    expect(verifyGithubSignature(secret, body, undefined)).toBe(false);
    expect(verifyGithubSignature(secret, body, sig.replace('sha256=', 'sha1='))).toBe(false);
    expect(verifyGithubSignature(secret, body, `${sig.slice(0, -2)}zz`)).toBe(false);
  });
});

describe('nextLink', () => {
  it('finds rel="next" among GitHub\'s Link relations', () => {
    const link =
      '<https://api.github.com/user/repos?page=3>; rel="next", <https://api.github.com/user/repos?page=5>; rel="last", <https://api.github.com/user/repos?page=1>; rel="first"';
    expect(nextLink(link)).toBe('https://api.github.com/user/repos?page=3');
    expect(nextLink('<https://api.github.com/user/repos?page=1>; rel="prev"')).toBeUndefined();
    expect(nextLink(null)).toBeUndefined();
  });
});
