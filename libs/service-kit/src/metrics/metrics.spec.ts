import { describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';

import { metricsListen } from '../config/env.js';
import { installHttpMetrics } from './http-metrics.js';
import { Metrics } from './metrics.js';

/** The value of one sample line (`name{labels} value`) in the exposition text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('HTTP metrics', () => {
  it('counts by the matched route template and puts every unmatched path in one series', async () => {
    const metrics = new Metrics({ service: 'gateway', version: '1.2.3' });
    let onResponse: ((request: unknown, reply: unknown, done: () => void) => void) | undefined;
    const app = { addHook: (_name: string, hook: typeof onResponse) => (onResponse = hook) };
    installHttpMetrics(app as unknown as FastifyInstance, metrics);
    const respond = (url: string | undefined, status: number) =>
      onResponse?.({ method: 'GET', routeOptions: { url } }, { statusCode: status, elapsedTime: 12 }, () => undefined);
    for (let i = 0; i < 3; i++) respond('/v1/connections/:connectionId', 200);
    respond(undefined, 404);
    respond(undefined, 404);

    const { body } = await metrics.scrape();
    expect(
      sample(body, 'http_requests_total', { route: '/v1/connections/:connectionId', method: 'GET', status: '200' }),
    ).toBe(3);
    expect(sample(body, 'http_requests_total', { route: 'unmatched', status: '404' })).toBe(2);
    expect(sample(body, 'http_request_duration_seconds_count', { route: '/v1/connections/:connectionId' })).toBe(3);
    expect(sample(body, 'http_request_duration_seconds_sum', { route: '/v1/connections/:connectionId' })).toBeCloseTo(
      0.036,
    );
    // Every series names its service; the version is on service_info.
    expect(sample(body, 'service_info', { service: 'gateway', version: '1.2.3' })).toBe(1);
    expect(body).toMatch(/process_cpu_user_seconds_total\{service="gateway"\}/);
  });
});

describe('key-store and readiness metrics', () => {
  it('times key operations by outcome, and reports readiness as it is at scrape time', async () => {
    const metrics = new Metrics({ service: 'personal-server', version: 't', shard: 2 });
    metrics.keyStore.keyOperation({ provider: 'local', operation: 'unwrap', seconds: 0.002, ok: true });
    metrics.keyStore.keyOperation({ provider: 'local', operation: 'unwrap', seconds: 0.3, ok: false });
    let ready = true;
    metrics.trackReadiness({ evaluate: () => Promise.resolve({ ready }) });

    let { body } = await metrics.scrape();
    const unwraps = { operation: 'unwrap', shard: '2' };
    expect(sample(body, 'keystore_operation_duration_seconds_count', { ...unwraps, outcome: 'ok' })).toBe(1);
    expect(sample(body, 'keystore_operation_duration_seconds_count', { ...unwraps, outcome: 'error' })).toBe(1);
    expect(sample(body, 'service_ready', { service: 'personal-server' })).toBe(1);
    ready = false;
    ({ body } = await metrics.scrape());
    expect(sample(body, 'service_ready', { service: 'personal-server' })).toBe(0);
  });
});

describe('metricsListen', () => {
  const env = { HTTP_HOST: '0.0.0.0', METRICS_HOST: undefined, METRICS_PORT: undefined };
  it('puts /metrics 1000 above the HTTP port unless told otherwise, and on any free port in tests', () => {
    expect(metricsListen({ ...env, HTTP_PORT: 8080 })).toEqual({ host: '0.0.0.0', port: 9080 });
    expect(metricsListen({ ...env, HTTP_PORT: 0 })).toEqual({ host: '0.0.0.0', port: 0 });
    expect(metricsListen({ ...env, HTTP_PORT: 65_000 })).toEqual({ host: '0.0.0.0', port: 0 });
    expect(metricsListen({ ...env, HTTP_PORT: 8080, METRICS_PORT: 9100, METRICS_HOST: '10.0.0.1' })).toEqual({
      host: '10.0.0.1',
      port: 9100,
    });
  });
});
