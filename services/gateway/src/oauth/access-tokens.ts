import { createHash } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { ApplicationStatus, rpc } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';

import { setAuditSubject } from '../audit/audit-subject.js';
import type { Env } from '../env.js';
import { bearerChallenge, oauthUrls } from './oauth-urls.js';
import { TokenRevocations } from './token-revocations.js';

/** Three base64url segments: a JWS, not an API key (`cg_sk_...`) or anything else. */
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function looksLikeAccessToken(token: string): boolean {
  return JWS_SHAPE.test(token);
}

/**
 * How long a token's verified signature and claims are kept (by the token's hash): at most
 * this, never past its `exp`. Shorter than the JWKS cache (10 min), so a key identity
 * withdraws stops working here no later than it did without this; revocation, the
 * application's state and scopes are still checked on every request.
 */
const VERIFIED_KEEP_MS = 60_000;
/** Verified tokens kept at most (the oldest goes first). */
const MAX_VERIFIED = 10_000;

/** What a verified access token says (RFC 9068 claims and ours). */
export interface AccessTokenClaims {
  jti: string;
  clientId: string;
  orgId: string;
  applicationId: string;
  /** The person the token acts for; undefined when the application acts as itself (client credentials). */
  userId: string | undefined;
  scopes: string[];
  /** The grant (token family) behind a person's token; undefined for client credentials. */
  grantId: string | undefined;
  /** `iat`, in seconds. */
  issuedAt: number;
  /** `exp`, in seconds. */
  expiresAt: number;
}

/**
 * Verifies identity's access tokens locally: signature against identity's JWKS (fetched
 * once, cached, re-fetched when an unknown `kid` appears, so key rotation needs nothing
 * here), issuer, audience = this gateway, `typ: at+jwt`, ES256 only, expiry.
 *
 * Only tokens of an application acting as itself (client credentials: `sub` is its client
 * id) are accepted for now, with the same reach as its API key; tokens acting for a person
 * wait for the per-person check on every route (docs/identity.md). Like an API key's, the
 * application's answer is remembered until identity announces its disabling, so a disabled
 * one fails at once;
 * and a token whose grant, application or person was revoked after it was issued fails on
 * the next request (TokenRevocations: the CONTROL stream watermark).
 */
@Injectable()
export class AccessTokens implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #revocations: TokenRevocations;
  readonly #freshnessMs: number;
  /** SHA-256 of a token → its verified claims, until `until` (epoch ms): an ES256 verification per token, not per request. */
  readonly #verified = new Map<string, { claims: AccessTokenClaims; until: number }>();
  /** applicationId → what identity said of an active application, and the revocation position then. */
  readonly #applications = new Map<string, { orgId: string; active: boolean; clientId: string; seqAtAsk: number }>();

  constructor(
    private readonly rpcClient: RpcClient,
    @Inject(SERVICE_ENV) env: Env,
    revocations: TokenRevocations,
  ) {
    this.#revocations = revocations;
    this.#freshnessMs = env.POLICY_FRESHNESS_TIMEOUT_MS;
    const urls = oauthUrls(env.GATEWAY_PUBLIC_URL);
    this.#issuer = urls.issuer;
    this.#audience = urls.resource;
    this.#jwks = createRemoteJWKSet(new URL(`${env.IDENTITY_HTTP_URL}${urls.issuerPath}/jwks`), {
      timeoutDuration: 5_000,
      // A kid nobody has seen triggers at most one fetch every 30 s (forged tokens cannot make us hammer identity).
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.#revocations.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.#revocations.stop();
  }

  async verify(token: string): Promise<AccessTokenClaims> {
    const key = createHash('sha256').update(token).digest('base64url');
    const kept = this.#verified.get(key);
    if (kept && kept.until > Date.now()) return kept.claims;
    const claims = await this.verifyNow(token);
    if (this.#verified.size >= MAX_VERIFIED) {
      for (const [old, entry] of this.#verified) if (entry.until <= Date.now()) this.#verified.delete(old);
      if (this.#verified.size >= MAX_VERIFIED) this.#verified.delete(this.#verified.keys().next().value as string);
    }
    this.#verified.set(key, { claims, until: Math.min(Date.now() + VERIFIED_KEEP_MS, claims.expiresAt * 1000) });
    return claims;
  }

  private async verifyNow(token: string): Promise<AccessTokenClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#jwks, {
        issuer: this.#issuer,
        audience: this.#audience,
        typ: 'at+jwt',
        algorithms: ['ES256'],
        clockTolerance: 5,
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
      }));
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      // identity unreachable is not the caller's fault: 503, not 401.
      if (code === 'ERR_JWKS_TIMEOUT' || (code === '' && error instanceof TypeError)) {
        throw new AppError('service_unavailable', 'The authorization server keys could not be fetched', [], {
          cause: error,
        });
      }
      throw invalidToken();
    }
    const {
      jti,
      sub,
      client_id: clientId,
      org_id: orgId,
      app_id: applicationId,
      scope,
      grant_id: grantId,
      iat,
      exp,
    } = payload;
    if (![jti, sub, clientId, orgId, applicationId].every((v) => typeof v === 'string' && v !== ''))
      throw invalidToken();
    // Frozen: one token's claims are shared by its requests while kept.
    return Object.freeze({
      jti: jti as string,
      clientId: clientId as string,
      orgId: orgId as string,
      applicationId: applicationId as string,
      userId: sub === clientId ? undefined : sub,
      scopes: Object.freeze(typeof scope === 'string' && scope ? scope.split(' ') : []) as string[],
      grantId: typeof grantId === 'string' && grantId !== '' ? grantId : undefined,
      issuedAt: iat as number,
      expiresAt: exp as number,
    });
  }

  /**
   * The api_key routes' other credential: sets the caller as an API key would, plus the
   * person and scopes of the token. `personTokens`: the route keeps a person's token to
   * that person's connections and its scopes (RouteDefinition.personTokens).
   */
  /**
   * The token's application as identity last said, remembered until an APPLICATION
   * revocation (published by identity before a disable returns) arrives after the answer;
   * check() has read the revocations up to date just before. Disabling also voids every
   * token issued before it (check()), so a remembered "active" is never trusted alone.
   */
  private async application(orgId: string, applicationId: string): Promise<{ active: boolean; clientId: string }> {
    const known = this.#applications.get(applicationId);
    if (known && known.orgId === orgId && !this.#revocations.revokedSince({ applicationId }, known.seqAtAsk))
      return known;
    const seqAtAsk = this.#revocations.consumedSeq;
    const { application } = await this.rpcClient
      .request(rpc.identity.getApplication, { orgId, applicationId })
      .catch((error: unknown) => {
        if ((error as { code?: string }).code === 'not_found') throw invalidToken();
        throw error;
      });
    if (!application) throw invalidToken();
    const answer = {
      orgId,
      active: application.status === ApplicationStatus.ACTIVE,
      // A metadata-URL client (CIMD) presents its document's URL: that is its client_id in
      // tokens, and it is this application's only in the organization that allowed it.
      clientId: application.clientMetadataUrl || application.clientId,
      seqAtAsk,
    };
    if (answer.active) {
      if (this.#applications.size >= 10_000) this.#applications.clear();
      this.#applications.set(applicationId, answer);
    }
    return answer;
  }

  async authenticate(request: FastifyRequest, token: string, personTokens = false): Promise<void> {
    const claims = await this.verify(token);
    if (claims.userId !== undefined && !personTokens) {
      throw new AppError(
        'unauthenticated',
        'Access tokens acting for a person are not accepted on this route yet; use an API key or a client credentials token',
      );
    }
    await this.#revocations.check(claims, this.#freshnessMs);
    const application = await this.application(claims.orgId, claims.applicationId);
    if (!application.active || application.clientId !== claims.clientId) throw invalidToken();
    request.caller = {
      kind: 'application',
      orgId: claims.orgId,
      applicationId: claims.applicationId,
      apiKeyId: '',
      accessTokenId: claims.jti,
      tokenScopes: claims.scopes,
      ...(claims.userId === undefined ? {} : { onBehalfOf: claims.userId }),
    };
    setAuditSubject(request, {
      orgId: claims.orgId,
      applicationId: claims.applicationId,
      actorKind: 'access_token',
      actorId: claims.jti,
    });
  }
}

/**
 * RFC 6750 §3.1: a token without the scope a request needs is 403 with a Bearer challenge
 * naming that scope; the body is the API's own problem (`scope_not_granted`).
 */
export function insufficientScope(
  reply: FastifyReply,
  env: Pick<Env, 'GATEWAY_PUBLIC_URL'>,
  needed: string[],
): AppError {
  const description = `This access token does not carry ${needed.join(' or ')}`;
  reply.header(
    'www-authenticate',
    bearerChallenge(oauthUrls(env.GATEWAY_PUBLIC_URL), {
      code: 'insufficient_scope',
      description,
      scope: needed.join(' '),
    }),
  );
  return new AppError('scope_not_granted', description);
}

function invalidToken(): AppError {
  return new AppError('unauthenticated', 'The access token is invalid, expired or not for this gateway');
}
