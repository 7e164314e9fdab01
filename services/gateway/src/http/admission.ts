import { AppError } from '@context-gateway/errors';
import { PG_POOL, PROBLEM_CONTENT_TYPE, SERVICE_ENV, toProblem } from '@context-gateway/service-kit';
import underPressure from '@fastify/under-pressure';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { bearerToken } from '../auth/auth.guard.js';
import { bearerTokenDigest } from '../auth/token-digest.js';
import type { Env } from '../env.js';
import { type RateLimited, RateLimits, sweepExpiredRateLimits } from './rate-limits.js';

/** Probes answer under any load: an orchestrator must see a busy gateway as alive. */
const EXEMPT = new Set(['/healthz', '/readyz']);
const MIB = 1024 * 1024;

/**
 * Admission control, before routing reaches a handler (and so before authentication costs
 * a round trip to identity), in this order:
 * 1. load shedding — more requests in flight than SHED_MAX_IN_FLIGHT, or the process under
 *    pressure (@fastify/under-pressure: event-loop delay, heap) → 503 service_unavailable
 *    with Retry-After, at once, so latency stays bounded instead of growing with a queue;
 * 2. rate limits shared by every replica (rate-limits.ts): per client address, then per
 *    API key / access token → 429 rate_limited with Retry-After.
 * docs/reliability.md has the figures (pnpm bench:overload).
 */
export async function installAdmission(app: NestFastifyApplication, logger: Logger): Promise<void> {
  const env = app.get<Env>(SERVICE_ENV);
  const limits = new RateLimits({
    pool: app.get(PG_POOL),
    windowSeconds: env.RATE_LIMIT_WINDOW_SECONDS,
    perKey: env.RATE_LIMIT_PER_KEY,
    perIp: env.RATE_LIMIT_PER_IP,
    storeTimeoutMs: env.RATE_LIMIT_STORE_TIMEOUT_MS,
    replicas: env.RATE_LIMIT_REPLICAS,
  });
  const sweep = sweepExpiredRateLimits(app.get(PG_POOL), (error) =>
    logger.warn({ err: (error as Error).message }, 'deleting expired rate-limit counters failed'),
  );
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onClose', (_instance, done) => {
      sweep.stop();
      done();
    });
  const refuse = (request: FastifyRequest, reply: FastifyReply, error: AppError, retryAfterSeconds: number) => {
    logger.info(
      { errorCode: error.code, method: request.method, status: error.status },
      'request refused at admission',
    );
    return reply
      .status(error.status)
      .header('content-type', PROBLEM_CONTENT_TYPE)
      .header('retry-after', String(retryAfterSeconds))
      .header('cache-control', 'no-store')
      .send(toProblem(error, '', String(request.id)));
  };
  // The path without split(): no array per request.
  const exempt = (request: FastifyRequest) => {
    const url = request.url;
    const query = url.indexOf('?');
    return EXEMPT.has(query === -1 ? url : url.slice(0, query));
  };

  if (env.SHED_MAX_EVENT_LOOP_DELAY_MS > 0 || env.SHED_MAX_HEAP_MIB > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: env.SHED_MAX_EVENT_LOOP_DELAY_MS,
      maxHeapUsedBytes: env.SHED_MAX_HEAP_MIB * MIB,
      sampleInterval: 1_000,
      // Nothing sent: the request goes on (a probe). Sent: Fastify stops at `reply.sent`.
      pressureHandler: (request, reply, type) => {
        if (exempt(request)) return;
        void refuse(request, reply, new AppError('service_unavailable', `The gateway is overloaded (${type})`), 1);
      },
    });
  }

  let inFlight = 0;
  const fastify = app.getHttpAdapter().getInstance();
  const admit = (
    request: FastifyRequest,
    reply: FastifyReply,
    limited: RateLimited | undefined,
    done: (error?: Error) => void,
  ) => {
    if (!limited) return done();
    const who = limited.limit === 'ip' ? 'this address' : 'this key';
    try {
      // Answered here: Fastify stops at `reply.sent`, done() is not called.
      void refuse(
        request,
        reply,
        new AppError('rate_limited', `Too many requests from ${who}; retry in ${limited.retryAfterSeconds} s`),
        limited.retryAfterSeconds,
      );
    } catch (error) {
      // As a throw from an async hook was: Fastify's error answer (also when admit runs in a `then`).
      done(error as Error);
    }
  };
  // A callback hook, not an async one: with the limits decided from memory (the usual case,
  // RateLimits.take) the request goes on in the same tick, without a promise of its own.
  fastify.addHook('onRequest', (request, reply, done) => {
    if (exempt(request)) return done();
    if (env.SHED_MAX_IN_FLIGHT > 0 && inFlight >= env.SHED_MAX_IN_FLIGHT) {
      void refuse(request, reply, new AppError('service_unavailable', 'The gateway is overloaded; retry shortly'), 1);
      return;
    }
    inFlight += 1;
    reply.raw.once('close', () => (inFlight -= 1));
    const token = bearerToken(request);
    const limited = limits.take(request.ip, token === undefined ? undefined : bearerTokenDigest(request, token));
    if (limited instanceof Promise) limited.then((answer) => admit(request, reply, answer, done), done);
    else admit(request, reply, limited, done);
  });
}
