import type { FastifyInstance } from 'fastify';

import type { Metrics } from './metrics.js';

/**
 * Counts and times every HTTP response by route template (`/v1/connections/:id`, never the
 * raw URL: ids in paths would make a series per id). A request that matched no route is
 * `unmatched`, so scanners probing random paths add one series, not thousands.
 */
export function installHttpMetrics(
  app: FastifyInstance,
  metrics: Pick<Metrics, 'httpRequests' | 'httpDuration'>,
): void {
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const method = request.method;
    metrics.httpRequests.inc({ route, method, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route, method }, reply.elapsedTime / 1000);
    done();
  });
}
