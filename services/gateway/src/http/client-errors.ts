import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import { AppError } from '@context-gateway/errors';
import { PROBLEM_CONTENT_TYPE, toProblem } from '@context-gateway/service-kit';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';

/** Node's HTTP parser errors worth their own status (what Fastify's default handler answers). */
const PARSER_ERRORS: Record<string, { status: number; detail: string } | undefined> = {
  HPE_HEADER_OVERFLOW: { status: 431, detail: 'The request headers are larger than this server accepts' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request did not arrive in time' },
};

/**
 * Requests Node's HTTP parser refuses before any route, hook or exception filter runs: headers
 * over the size limit (431), a request target that is not a path (`GET v1/x`, a raw space or
 * control character: 400), a timeout (408). Fastify answers them with a JSON body of its own
 * that has no `code`; the gateway is the public edge, so they get problem+json with a code
 * like every other answer. The code is `malformed_request` (no request reached a route), the
 * status stays the one HTTP defines for the case.
 *
 * Node's documented `clientError` event is the only place these can be answered; Fastify's
 * own listener is replaced, not wrapped (it would write a second response).
 */
export function installClientErrorAnswers(app: NestFastifyApplication, logger: Logger): void {
  const server = app.getHttpAdapter().getInstance().server;
  server.removeAllListeners('clientError');
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // A reset or a half-closed socket has nobody left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const known = error.code ? PARSER_ERRORS[error.code] : undefined;
    const status = known?.status ?? 400;
    const { requestId, problem } = malformed(status, known?.detail ?? 'The request could not be parsed as HTTP');
    logger.info({ errorCode: problem.code, parserError: error.code, status, requestId }, 'request rejected');
    if (socket.writable) {
      const body = JSON.stringify(problem);
      socket.write(
        `HTTP/1.1 ${status} ${statusText(status)}\r\n` +
          `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          `X-Request-Id: ${requestId}\r\n` +
          'Connection: close\r\n\r\n' +
          body,
      );
    }
    socket.destroy(error);
  });
}

/**
 * A path whose percent-encoding does not decode (`%E0%A4%A`, an encoded lone surrogate) is
 * refused by Fastify's router before any hook (FST_ERR_BAD_URL), and answered by Fastify's
 * default error handler, which no Nest filter reaches. Refused here first, in the same words
 * as every other request that could not be parsed. (The root fix is `frameworkErrors` in the
 * service-kit's FastifyAdapter options, answering through sendProblem; then this can go.)
 */
export function installBadPathAnswers(app: NestFastifyApplication, logger: Logger): void {
  const server = app.getHttpAdapter().getInstance().server;
  const fastify = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    if (decodablePath(request.url ?? '/')) {
      for (const listener of fastify) listener.call(server, request, response);
      return;
    }
    const { requestId, problem } = malformed(400, 'The request path is not valid percent-encoded UTF-8');
    logger.info({ errorCode: problem.code, method: request.method, status: 400, requestId }, 'request rejected');
    const body = JSON.stringify(problem);
    response
      .writeHead(400, {
        'content-type': PROBLEM_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        'x-request-id': requestId,
      })
      .end(body);
  });
}

function decodablePath(url: string): boolean {
  // Only a percent-escape can fail to decode: most URLs have none, and skip the decode.
  if (!url.includes('%')) return true;
  const query = url.indexOf('?');
  try {
    decodeURIComponent(query === -1 ? url : url.slice(0, query));
    return true;
  } catch {
    return false;
  }
}

/** A problem for a request that never reached a route: no path is echoed (it may be anything). */
function malformed(status: number, detail: string) {
  const requestId = randomUUID();
  return { requestId, problem: { ...toProblem(new AppError('malformed_request', detail), '', requestId), status } };
}

function statusText(status: number): string {
  switch (status) {
    case 408:
      return 'Request Timeout';
    case 431:
      return 'Request Header Fields Too Large';
    default:
      return 'Bad Request';
  }
}
