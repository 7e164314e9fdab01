import type { FastifyRequest } from 'fastify';

import { clientCredentials, param, str } from '../http.js';
import type { SimContext } from '../simulator-context.js';
import type { GrantFailureReason, IssuedTokens, OAuthClient } from './oauth-store.js';

export type TokenOutcome =
  | { ok: true; tokens: IssuedTokens; grantType: 'authorization_code' | 'refresh_token'; client: OAuthClient }
  | {
      ok: false;
      error: 'invalid_client' | 'unsupported_grant_type' | 'invalid_request' | 'invalid_grant';
      reason?: GrantFailureReason;
      description: string;
      usedBasic: boolean;
    };

const descriptions: Record<GrantFailureReason, string> = {
  code_unknown: 'The authorization code is invalid.',
  code_expired: 'The authorization code expired.',
  code_replayed: 'The authorization code was already used; tokens issued from it are revoked.',
  client_mismatch: 'The authorization code was issued to another client.',
  redirect_uri_mismatch: 'redirect_uri does not match the authorization request.',
  pkce_missing: 'code_verifier is required.',
  pkce_mismatch: 'code_verifier does not match the code_challenge.',
  refresh_unknown: 'The refresh token is invalid.',
  refresh_expired: 'The refresh token expired.',
  refresh_reused: 'The refresh token was already used; every token of this grant is revoked.',
  refresh_revoked: 'The refresh token was revoked.',
};

/** The provider-independent part of a token request: client auth, then the grant. */
export function handleTokenRequest(ctx: SimContext, req: FastifyRequest): TokenOutcome {
  ctx.counters.tokenRequests++;
  const creds = clientCredentials(req);
  const usedBasic = /^basic /i.test(req.headers.authorization ?? '');
  const client = ctx.store.authenticateClient(creds.id, creds.secret);
  if (!client) return { ok: false, error: 'invalid_client', description: 'Client authentication failed.', usedBasic };
  for (const name of ['grant_type', 'code', 'redirect_uri', 'code_verifier', 'refresh_token']) {
    if (param(req.body, name) === null)
      return { ok: false, error: 'invalid_request', description: `${name} repeated`, usedBasic };
  }
  const grantType = str(req.body, 'grant_type');
  const result =
    grantType === 'authorization_code'
      ? ctx.store.exchangeCode(
          client,
          str(req.body, 'code'),
          str(req.body, 'redirect_uri'),
          str(req.body, 'code_verifier'),
        )
      : grantType === 'refresh_token'
        ? ctx.store.refresh(client, str(req.body, 'refresh_token'))
        : undefined;
  if (!result) {
    return {
      ok: false,
      error: 'unsupported_grant_type',
      description: `grant_type ${grantType ?? '(missing)'} is not supported.`,
      usedBasic,
    };
  }
  if (!result.ok) {
    const error = result.reason === 'pkce_missing' ? 'invalid_request' : 'invalid_grant';
    return { ok: false, error, reason: result.reason, description: descriptions[result.reason], usedBasic };
  }
  return { ok: true, tokens: result.tokens, grantType: grantType as 'authorization_code' | 'refresh_token', client };
}
