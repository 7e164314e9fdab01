import { createHash, timingSafeEqual } from 'node:crypto';

import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { AuditRecorder } from '../audit/audit-recorder.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import type { Env } from '../env.js';
import { AuthFailureLimit } from '../http/rate-limits.js';
import { required } from '../http/required.js';
import { ROUTE_DEFINITION, type RouteDefinition } from '../http/route.decorator.js';
import { AccessTokens, looksLikeAccessToken } from '../oauth/access-tokens.js';
import { ApiKeyCache } from './api-key-cache.js';
import { AuthStrategies } from './auth.strategies.js';
import { SESSION_COOKIE } from './auth.types.js';
import { parseCookies } from './cookies.js';
import { bearerTokenDigest } from './token-digest.js';

// Up to 4 KiB: OAuth access tokens (signed JWTs, src/oauth/) are longer than API keys.
const BEARER = /^Bearer[ ]+([\x21-\x7e]{1,4096})$/;
const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** The bearer token of a request, or undefined. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return typeof header === 'string' ? BEARER.exec(header.trim())?.[1] : undefined;
}

/**
 * The one global guard: reads each route's `@Route({ auth })` and establishes the caller
 * before anything else runs (input validation included), so an unauthenticated request
 * learns nothing about a route's input rules. Routes without a @Route definition (the
 * runtime's /healthz, /readyz and /v1/openapi.json) are public by construction.
 *
 * API keys are checked against the gateway's memory of identity's answers (ApiKeyCache),
 * kept exact by identity's revocation events: a revoke that has returned refuses the very
 * next request with that key, on every gateway (docs/identity.md).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly operatorDigest: Buffer | undefined;

  constructor(
    private readonly reflector: Reflector,
    private readonly rpcClient: RpcClient,
    private readonly apiKeys: ApiKeyCache,
    private readonly strategies: AuthStrategies,
    private readonly accessTokens: AccessTokens,
    private readonly failures: AuthFailureLimit,
    private readonly audit: AuditRecorder,
    @Inject(SERVICE_ENV) env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.operatorDigest = env.OPERATOR_TOKEN ? digest(env.OPERATOR_TOKEN) : undefined;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const definition = this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, context.getHandler());
    if (!definition) return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const auth: string = definition.auth;
    switch (auth) {
      case 'none':
        return true;
      case 'api_key':
      case 'operator':
      case 'user_session':
        await this.checked(request, context.switchToHttp().getResponse<FastifyReply>(), auth, definition);
        return true;
      default: {
        const strategy = this.strategies.get(auth);
        if (!strategy) throw new AppError('unauthenticated', `No authentication is available for this route (${auth})`);
        await strategy(request);
        return true;
      }
    }
  }

  /**
   * The three credentials a guesser could try (API key, operator token, session cookie), with
   * failures counted per client address: an address over AUTH_FAILURES_PER_IP is refused
   * before its credential is looked at; each refused credential is audited
   * (authentication_failed: which kind, a fingerprint of what was sent, never the value).
   */
  private async checked(
    request: FastifyRequest,
    reply: FastifyReply,
    kind: 'api_key' | 'operator' | 'user_session',
    definition: RouteDefinition,
  ): Promise<void> {
    const presented =
      kind === 'user_session' ? parseCookies(request.headers.cookie).get(SESSION_COOKIE) : bearerToken(request);
    const wait = presented === undefined ? undefined : this.failures.blocked(request.ip);
    if (wait !== undefined) throw tooManyFailures(reply, wait);
    try {
      if (kind === 'api_key') await this.apiKey(request, definition.personTokens === true);
      else if (kind === 'operator') this.operator(request);
      else await this.userSession(request);
    } catch (error) {
      // Only a credential that was sent and refused counts; a missing one is a plain 401.
      if (presented === undefined || !(error instanceof AppError) || error.code !== 'unauthenticated') throw error;
      const over = await this.failures.failed(request.ip);
      await this.recordFailure(request, kind, presented, over === undefined ? 'unauthenticated' : 'rate_limited');
      if (over !== undefined) throw tooManyFailures(reply, over);
      throw error;
    }
  }

  private async recordFailure(request: FastifyRequest, kind: string, presented: string, code: string): Promise<void> {
    await this.audit
      .record({
        action: 'authentication_failed',
        outcome: 'denied',
        actorKind: 'anonymous',
        // Enough to tell one guessed value from another, nothing to reuse.
        actorId: `sha256:${digest(presented).toString('hex').slice(0, 16)}`,
        resource: `credential:${kind}`,
        errorCode: code,
        operation: `${request.method} ${request.routeOptions.url ?? ''}`,
      })
      .catch((error: unknown) =>
        // The refusal stands either way: nothing is answered but the 401/429.
        this.logger.warn({ code: AppError.from(error).code }, 'failed authentication not audited'),
      );
  }

  private async apiKey(request: FastifyRequest, personTokens: boolean): Promise<void> {
    const token = bearerToken(request);
    // An OAuth access token from identity's authorization server, beside API keys.
    if (token && looksLikeAccessToken(token)) return this.accessTokens.authenticate(request, token, personTokens);
    if (!token?.startsWith('cg_sk_'))
      throw new AppError('unauthenticated', 'Send an API key (Authorization: Bearer cg_sk_...) or an access token');
    const key = await this.apiKeys.authenticate(bearerTokenDigest(request, token));
    request.caller = {
      kind: 'application',
      orgId: key.orgId,
      applicationId: key.applicationId,
      apiKeyId: key.apiKeyId,
    };
    setAuditSubject(request, {
      orgId: key.orgId,
      applicationId: key.applicationId,
      actorKind: 'api_key',
      actorId: key.apiKeyId,
    });
  }

  private operator(request: FastifyRequest): void {
    if (!this.operatorDigest) {
      throw new AppError(
        'admin_disabled',
        'The admin API is disabled: set OPERATOR_TOKEN (at least 32 characters) in the gateway environment',
      );
    }
    const token = bearerToken(request);
    // Compare digests: equal length always, so timingSafeEqual never throws and leaks no length.
    if (!token || !timingSafeEqual(digest(token), this.operatorDigest))
      throw new AppError('unauthenticated', 'Send the operator token: Authorization: Bearer <OPERATOR_TOKEN>');
    request.operator = { kind: 'operator' };
    setAuditSubject(request, { actorKind: 'operator', actorId: 'operator' });
  }

  private async userSession(request: FastifyRequest): Promise<void> {
    const token = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
    if (!token) throw new AppError('unauthenticated', 'Not signed in');
    const session = await this.rpcClient.request(rpc.identity.resolveSession, { sessionToken: token });
    const user = required(session.user, 'session user');
    request.user = {
      userId: user.id,
      displayName: user.displayName,
      sessionExpiresAt: session.expiresAt ? timestampDate(session.expiresAt) : new Date(0),
      authenticatedAt: session.authenticatedAt ? timestampDate(session.authenticatedAt) : new Date(0),
    };
    setAuditSubject(request, { userId: user.id, actorKind: 'user_session', actorId: user.id });
  }
}

function tooManyFailures(reply: FastifyReply, retryAfterSeconds: number): AppError {
  reply.header('retry-after', String(retryAfterSeconds));
  return new AppError(
    'rate_limited',
    `Too many failed authentications from this address; retry in ${retryAfterSeconds} s`,
  );
}
