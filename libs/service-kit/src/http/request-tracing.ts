import { randomUUID } from 'node:crypto';

import { extractTraceContext, isSecretKey, runWithRequestContext, tracer } from '@context-gateway/observability';
import { context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const spans = new WeakMap<FastifyRequest, Span>();

/** Honour a caller's X-Request-Id when it is sane (a proxy's), otherwise mint one. */
export function requestIdFor(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && REQUEST_ID.test(value) ? value : randomUUID();
}

/**
 * Every HTTP request runs inside a server span (parented by an incoming traceparent) and a
 * request context, so logs and outgoing NATS messages carry its trace and request ids.
 * Fastify runs hooks and handler in one async chain: entering the context in onRequest
 * before calling done() makes it current for everything the request does.
 */
export function installRequestTracing(app: FastifyInstance, logger: Logger): void {
  app.addHook('onRequest', (request, reply, done) => {
    const parent = extractTraceContext((key) => {
      const v = request.headers[key];
      return Array.isArray(v) ? v[0] : v;
    });
    const route = request.routeOptions.url ?? 'unmatched';
    const span = tracer().startSpan(
      `${request.method} ${route}`,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'http.route': route } },
      parent,
    );
    spans.set(request, span);
    void reply.header('x-request-id', request.id);
    runWithRequestContext({ requestId: String(request.id) }, () => context.with(trace.setSpan(parent, span), done));
  });

  app.addHook('onResponse', (request, reply, done) => {
    const span = spans.get(request);
    const status = reply.statusCode;
    if (span) {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    // Probes hit every few seconds; keep them out of the info stream.
    const probe = request.url === '/healthz' || request.url === '/readyz';
    const line = {
      method: request.method,
      path: loggablePath(request),
      status,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      request_id: request.id,
    };
    if (probe) logger.debug(line, 'http request');
    else logger.info(line, 'http request');
    done();
  });
}

/**
 * The request path for the access log, with the value of every path parameter whose name
 * says it is a secret (`:token`, `:secret`, ...) replaced: a connect link's token, for one,
 * is a bearer credential for its session and must not reach the logs.
 */
export function loggablePath(request: Pick<FastifyRequest, 'url' | 'params'>): string {
  let path = request.url.split('?')[0] ?? '';
  const params = (request.params ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(params)) {
    if (typeof value === 'string' && value.length > 0 && isSecretKey(name))
      path = path.split(encodeURI(value)).join('[redacted]').split(value).join('[redacted]');
  }
  return path;
}
