import { hash } from 'node:crypto';

import type { FastifyRequest } from 'fastify';

declare const madeByBearerTokenDigest: unique symbol;

/**
 * A bearer token with its SHA-256 (base64url) `digest`: the only name the rate limit's
 * counter and the API key cache give a token, so the token itself is kept in neither. Only
 * bearerTokenDigest makes one (the brand cannot be written elsewhere without a cast): a
 * digest always belongs to the token beside it, so one key's principal cannot be remembered
 * under another's name, and a raw token cannot be passed where a digest is meant.
 */
export interface TokenDigest {
  readonly token: string;
  readonly digest: string;
  readonly [madeByBearerTokenDigest]: true;
}

const digests = new WeakMap<FastifyRequest, TokenDigest>();

/** The request's bearer `token` with its digest, computed once per request for admission and the guard. */
export function bearerTokenDigest(request: FastifyRequest, token: string): TokenDigest {
  const known = digests.get(request);
  if (known?.token === token) return known;
  // One-shot hash(): a third of createHash()'s CPU here (no Hash object per call).
  const made = { token, digest: hash('sha256', token, 'base64url') } as TokenDigest;
  digests.set(request, made);
  return made;
}
