import { fromBinary } from '@bufbuild/protobuf';
import { allRpcDescriptors, ErrorReplySchema, SERVICE_NAMES } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { type ServiceName, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The foundation's promises, checked on the real stack: seven processes, real Postgres,
// a private nats-server, driven through the gateway and the bus only.
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack('platform', { OPERATOR_TOKEN });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** The operator's view of /v1/health: every service's checks. */
async function health() {
  const res = await fetch(`${stack.gatewayUrl}/v1/health`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
  return {
    status: res.status,
    body: (await res.json()) as {
      status: string;
      services: Record<
        string,
        { ready: boolean; checks?: Record<string, string>; instance?: string; error?: { code: string } }
      >;
    },
  };
}

describe('the platform', () => {
  it('tells an anonymous caller only ready or not, without any internal detail', async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready' });
  });

  it('reports every service ready, each answering over NATS', async () => {
    const { status, body } = await health();
    expect(status).toBe(200);
    expect(body.status).toBe('ready');
    expect(Object.keys(body.services).sort()).toEqual([...SERVICE_NAMES].sort());
    for (const [name, service] of Object.entries(body.services)) {
      // personal-server also reports whether every one of its shards answers (docs/personal-server.md)
      const checks =
        name === 'personal-server' ? { database: 'up', nats: 'up', shards: 'up' } : { database: 'up', nats: 'up' };
      expect({ name, ready: service.ready, checks: service.checks }).toEqual({ name, ready: true, checks });
      // the pid in `instance` proves the answer came from that service's own process (any shard of personal-server)
      const pids = name === 'personal-server' ? stack.shardPids() : [stack.pids()[name as ServiceName]];
      expect(pids.map(String)).toContain(service.instance?.split(':').pop());
    }
  });

  it('answers unknown routes and bad input with problem+json and a stable code', async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/nothing-here?token=abc`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await res.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({ status: 404, code: 'route_not_found', instance: '/v1/nothing-here' });
    expect(problem.requestId).toBe(res.headers.get('x-request-id'));
  });

  it('publishes its OpenAPI description, generated from the validating schemas', async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths['/v1/health']?.get?.responses ?? {})).toContain('200');
  });

  it('gives a typed error reply to a malformed message on every subject, and every service stays up', async () => {
    const nc: NatsConnection = await connect(stack.natsOptions());
    try {
      for (const descriptor of allRpcDescriptors()) {
        const reply = await nc.request(descriptor.subject, new TextEncoder().encode('{"not":"protobuf"}'), {
          timeout: 3_000,
        });
        expect({ subject: descriptor.subject, status: reply.headers?.get('cg-status') }).toEqual({
          subject: descriptor.subject,
          status: 'error',
        });
        expect(fromBinary(ErrorReplySchema, reply.data).code).toBe('malformed_request');
      }
    } finally {
      await nc.drain();
    }
    const { status } = await health();
    expect(status).toBe(200);
  });

  it('carries the trace and request ids from the HTTP edge across NATS into every service log', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await fetch(`${stack.gatewayUrl}/v1/health`, {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': 'e2e-trace-check' },
    });
    expect(res.headers.get('x-request-id')).toBe('e2e-trace-check');
    await waitFor(
      'every service to log the trace',
      () => {
        const seen = new Set(
          stack.logs
            .filter((l) => l.json?.trace_id === traceId && l.json?.request_id === 'e2e-trace-check')
            .map((l) => l.json?.service),
        );
        return Promise.resolve(SERVICE_NAMES.every((s) => seen.has(s)));
      },
      10_000,
    );
  });

  it('turns not-ready when NATS stops and ready again when it returns, without restarting', async () => {
    const before = stack.pids();
    await stack.stopNats();
    for (const service of SERVICE_NAMES) {
      const url = stack.urls[service]!;
      const body = await waitFor(`${service} not ready`, async () => {
        const res = await fetch(`${url}/readyz`);
        return res.status === 503 ? ((await res.json()) as { checks: Record<string, string> }) : undefined;
      });
      // Up or down only: no internal error text on a port that may be public.
      expect(body.checks.nats).toBe('down');
      expect(body.checks.database).toBe('up');
    }
    await stack.startNats();
    await waitFor('platform ready again', async () => (await health()).status === 200, 45_000);
    expect(stack.pids()).toEqual(before);
  }, 120_000);

  it('shuts a service down gracefully on SIGTERM', async () => {
    const exit = await stack.stopService('policy');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(stack.logs.some((l) => l.service === 'policy' && l.json?.msg === 'stopped')).toBe(true);
    const { status, body } = await health();
    expect(status).toBe(503);
    expect(body.services.policy?.error?.code).toBe('service_unavailable');
  }, 30_000);
});
