import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

import { AppError } from '@context-gateway/errors';
import { PROBLEM_CONTENT_TYPE, toProblem } from '@context-gateway/service-kit';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';

import { OUR_COOKIE_PREFIX, parseCookies } from '../auth/cookies.js';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Sec-Fetch-Site values of a request the gateway's own pages (or the person, typing a URL) made. */
const OWN_SITE = new Set(['same-origin', 'none']);

/**
 * Why a request is refused before any route sees it, or undefined:
 * - a cookie name sent twice (400 malformed_request): one value per name;
 * - a write (POST/PUT/PATCH/DELETE) carrying one of our cookies that a browser says came
 *   from another site or origin (403 csrf_invalid): Sec-Fetch-Site other than same-origin
 *   or none; without Sec-Fetch-Site, an Origin other than ours. SameSite already keeps our cookies off
 *   most cross-site writes; this also refuses same-site ones (a sibling subdomain) and any
 *   browser that ignores SameSite. Clients that send neither Sec-Fetch-Site nor Origin
 *   (servers, curl) are not browsers, so no other site can make them send our cookie.
 */
function edgeRefusal(request: Pick<IncomingMessage, 'method' | 'headers'>, publicOrigin: string): AppError | undefined {
  let cookies: Map<string, string>;
  try {
    cookies = parseCookies(request.headers.cookie);
  } catch (error) {
    return AppError.from(error);
  }
  if (!UNSAFE_METHODS.has(request.method ?? '')) return undefined;
  if (![...cookies.keys()].some((name) => name.startsWith(OUR_COOKIE_PREFIX))) return undefined;
  // Fetch metadata first: a page with Referrer-Policy no-referrer (the consent page) makes
  // the browser send `Origin: null` even for its own same-origin form.
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') {
    if (OWN_SITE.has(site.toLowerCase())) return undefined;
    return new AppError('csrf_invalid', 'A cookie-authenticated write must come from this gateway’s own pages');
  }
  // A browser without fetch metadata: its Origin decides.
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== publicOrigin)
    return new AppError('csrf_invalid', 'A cookie-authenticated write must come from this gateway’s own origin');
  return undefined;
}

/**
 * Applies edgeRefusal to every request, before Fastify routes it: the forwarded OAuth paths
 * and the Nest routes alike. Answers problem+json with the request's id.
 */
export function installEdgeGuards(app: NestFastifyApplication, logger: Logger, publicOrigin: string): void {
  const server = app.getHttpAdapter().getInstance().server;
  const next = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const refusal = edgeRefusal(request, publicOrigin);
    if (!refusal) {
      for (const listener of next) listener.call(server, request, response);
      return;
    }
    const header = request.headers['x-request-id'];
    const requestId = typeof header === 'string' && /^[\w.-]{1,128}$/.test(header) ? header : randomUUID();
    logger.info(
      { errorCode: refusal.code, method: request.method, status: refusal.status, requestId },
      'request rejected',
    );
    const body = JSON.stringify(toProblem(refusal, '', requestId));
    response
      .writeHead(refusal.status, {
        'content-type': PROBLEM_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        'x-request-id': requestId,
        'cache-control': 'no-store',
      })
      .end(body);
  });
}
