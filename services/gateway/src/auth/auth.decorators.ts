import { AppError } from '@context-gateway/errors';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

import type { ApplicationCaller, SessionUser } from './auth.types.js';

/** The calling application (routes with `auth: 'api_key'`). */
export const Caller = createParamDecorator((_: unknown, context: ExecutionContext): ApplicationCaller => {
  const caller = context.switchToHttp().getRequest<FastifyRequest>().caller;
  // Only reachable when a handler asks for a caller its route does not authenticate.
  if (!caller) throw new AppError('internal', 'This route does not authenticate an application');
  return caller;
});

/** The signed-in user (routes with `auth: 'user_session'`). */
export const CurrentUser = createParamDecorator((_: unknown, context: ExecutionContext): SessionUser => {
  const user = context.switchToHttp().getRequest<FastifyRequest>().user;
  if (!user) throw new AppError('internal', 'This route does not authenticate a user');
  return user;
});
