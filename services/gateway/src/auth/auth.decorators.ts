import { AppError } from '@context-gateway/errors';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

import { type ApplicationCaller, SESSION_COOKIE, type SessionUser } from './auth.types.js';
import { parseCookies } from './cookies.js';

/** The calling application of a request whose route has `auth: 'api_key'` (set by the guard). */
export function callerOf(request: FastifyRequest): ApplicationCaller {
  const caller = request.caller;
  // Only reachable when a handler asks for a caller its route does not authenticate.
  if (!caller) throw new AppError('internal', 'This route does not authenticate an application');
  return caller;
}

/** The calling application (routes with `auth: 'api_key'`). */
export const Caller = createParamDecorator((_: unknown, context: ExecutionContext): ApplicationCaller =>
  callerOf(context.switchToHttp().getRequest<FastifyRequest>()),
);

/** The signed-in user (routes with `auth: 'user_session'`). */
export const CurrentUser = createParamDecorator((_: unknown, context: ExecutionContext): SessionUser => {
  const user = context.switchToHttp().getRequest<FastifyRequest>().user;
  if (!user) throw new AppError('internal', 'This route does not authenticate a user');
  return user;
});

/**
 * The signed-in user's session token (routes with `auth: 'user_session'`), for the calls that
 * act for that person on the bus: the callee resolves it with identity itself rather than
 * taking a user id on the gateway's word (docs/trust-boundaries.md). Never logged.
 */
export const CurrentSessionToken = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const request = context.switchToHttp().getRequest<FastifyRequest>();
  const token = request.user ? parseCookies(request.headers.cookie).get(SESSION_COOKIE) : undefined;
  if (!token) throw new AppError('internal', 'This route does not authenticate a user');
  return token;
});
