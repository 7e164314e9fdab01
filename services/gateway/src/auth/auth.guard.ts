import { createHash, timingSafeEqual } from 'node:crypto';

import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';

import { setAuditSubject } from '../audit/audit-subject.js';
import type { Env } from '../env.js';
import { required } from '../http/required.js';
import { ROUTE_DEFINITION, type RouteDefinition } from '../http/route.decorator.js';
import { AccessTokens, looksLikeAccessToken } from '../oauth/access-tokens.js';
import { AuthStrategies } from './auth.strategies.js';
import { SESSION_COOKIE } from './auth.types.js';
import { parseCookies } from './cookies.js';

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
 * API keys are checked with identity on every request, no cache: a revoke that has
 * returned is already in identity's database, so the very next request with that key
 * fails. The price is one NATS round trip and one index probe per call (measured in
 * docs/identity.md); a cache would need revocation events and still leave a window.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly operatorDigest: Buffer | undefined;

  constructor(
    private readonly reflector: Reflector,
    private readonly rpcClient: RpcClient,
    private readonly strategies: AuthStrategies,
    private readonly accessTokens: AccessTokens,
    @Inject(SERVICE_ENV) env: Env,
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
        await this.apiKey(request, definition.personTokens === true);
        return true;
      case 'operator':
        this.operator(request);
        return true;
      case 'user_session':
        await this.userSession(request);
        return true;
      default: {
        const strategy = this.strategies.get(auth);
        if (!strategy) throw new AppError('unauthenticated', `No authentication is available for this route (${auth})`);
        await strategy(request);
        return true;
      }
    }
  }

  private async apiKey(request: FastifyRequest, personTokens: boolean): Promise<void> {
    const token = bearerToken(request);
    // An OAuth access token from identity's authorization server, beside API keys.
    if (token && looksLikeAccessToken(token)) return this.accessTokens.authenticate(request, token, personTokens);
    if (!token?.startsWith('cg_sk_'))
      throw new AppError('unauthenticated', 'Send an API key (Authorization: Bearer cg_sk_...) or an access token');
    const key = await this.rpcClient.request(rpc.identity.authenticateApiKey, { apiKey: token });
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
