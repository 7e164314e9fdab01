import { createHash } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';
import type { FastifyRequest } from 'fastify';

import { bearerTokenDigest, type TokenDigest } from './token-digest.js';

const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest('base64url');

describe('bearerTokenDigest', () => {
  it("is the token's SHA-256, made once per request and token", () => {
    const request = {} as FastifyRequest;
    const token = `cg_sk_${'a'.repeat(40)}`;
    const first = bearerTokenDigest(request, token);
    expect(first).toEqual({ token, digest: sha256(token) });
    expect(bearerTokenDigest(request, token)).toBe(first);
    // Another request with the same token gets the same digest, computed for it.
    expect(bearerTokenDigest({} as FastifyRequest, token)).toEqual(first);
  });

  it('on the same request, another token gets its own digest, never the first one’s', () => {
    const request = {} as FastifyRequest;
    const one = bearerTokenDigest(request, `cg_sk_${'a'.repeat(40)}`);
    const other = bearerTokenDigest(request, `cg_sk_${'b'.repeat(40)}`);
    expect(other).toEqual({ token: `cg_sk_${'b'.repeat(40)}`, digest: sha256(`cg_sk_${'b'.repeat(40)}`) });
    expect(other.digest).not.toBe(one.digest);
  });

  it('is the only maker of a TokenDigest: a raw token or a hand-made pair does not type-check', () => {
    // @ts-expect-error a token is not its digest (RateLimits.take would write it to the table)
    const raw: TokenDigest = 'cg_sk_raw';
    // @ts-expect-error nor is a pair made by hand (ApiKeyCache would file one key under another's digest)
    const forged: TokenDigest = { token: 'cg_sk_one', digest: sha256('cg_sk_other') };
    expect([raw, forged]).toHaveLength(2);
  });
});
