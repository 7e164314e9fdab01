import { AppError } from '@context-gateway/errors';
import { RpcErrorPassthroughFilter } from '@context-gateway/messaging';
import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { normalizeHttpError, PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';
import { loggablePath } from './request-tracing.js';

/**
 * A service's HTML for an error on one of its pages (a browser's visit), or undefined for
 * problem+json. Gets the error already normalized (stable code, status).
 */
export type ErrorPageRenderer = (request: FastifyRequest, error: AppError) => string | undefined;

/**
 * The one exception filter of every service. HTTP: any error becomes problem+json with a
 * stable code; server errors are logged with their cause, client errors briefly. RPC: the
 * error is handed to the NATS transport untouched, which makes it a typed error reply.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly rpc = new RpcErrorPassthroughFilter();

  constructor(
    private readonly logger: Logger,
    private readonly errorPage?: ErrorPageRenderer,
  ) {}

  catch(exception: unknown, host: ArgumentsHost) {
    if (host.getType() === 'rpc') return this.rpc.catch(exception, host);
    const http = host.switchToHttp();
    sendProblem(
      http.getRequest<FastifyRequest>(),
      http.getResponse<FastifyReply>(),
      exception,
      this.logger,
      this.errorPage,
    );
  }
}

function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  exception: unknown,
  logger: Logger,
  errorPage: ErrorPageRenderer | undefined,
): void {
  let error = normalizeHttpError(exception);
  // Never echo the query string (it may carry a token or an OAuth code), nor path parameters
  // named like secrets (a connect link's token): the same rule as the access log.
  const path = loggablePath(request);
  if (error.code === 'route_not_found' && !(exception instanceof AppError)) {
    error = new AppError('route_not_found', `No route for ${request.method} ${path}`);
  }
  if (error.status >= 500) {
    logger.error({ err: error.cause ?? error, errorCode: error.code, method: request.method, path }, 'request failed');
  } else {
    logger.info({ errorCode: error.code, method: request.method, path, status: error.status }, 'request rejected');
  }
  const page = errorPage?.(request, error);
  if (page !== undefined) {
    void reply
      .status(error.status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header(
        'content-security-policy',
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
      )
      .send(page);
    return;
  }
  void reply
    .status(error.status)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    .send(toProblem(error, path, String(request.id)));
}
