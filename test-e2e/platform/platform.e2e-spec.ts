import { fromBinary } from '@bufbuild/protobuf';
import { allRpcDescriptors, ErrorReplySchema, SERVICE_NAMES } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';

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

/** A connection as one service's own login (the one the stack gave the running service). */
async function connectAs(service: ServiceName): Promise<pg.Client> {
  const login = stack.databaseLogins[service];
  if (!login) throw new Error(`the stack gave ${service} no database login`);
  const url = new URL(stack.databaseUrl);
  url.username = encodeURIComponent(login.user);
  url.password = encodeURIComponent(login.password);
  const client = new pg.Client({ connectionString: url.toString(), application_name: 'e2e:roles' });
  await client.connect();
  return client;
}

/** The SQLSTATE a statement fails with, or undefined when it succeeds. */
async function failure(client: pg.Client, sql: string): Promise<string | undefined> {
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

const schemaOf = (service: string) => service.replace(/-/g, '_');

describe('a database role per service, as the stack runs them', () => {
  it('runs every service (and every shard) with its own login, none a superuser or the schema owner', async () => {
    // Every service pings its database for the operator's health view: each has a connection open now.
    expect((await health()).status).toBe(200);
    const admin = new pg.Client({ connectionString: stack.databaseUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ app: string; user: string; superuser: boolean; owner: boolean }>(
        `SELECT DISTINCT a.application_name AS app, a.usename AS user, r.rolsuper AS superuser,
                EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid) AS owner
           FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
          WHERE a.datname = current_database() AND a.application_name = ANY($1)`,
        [[...SERVICE_NAMES]],
      );
      const seen = Object.fromEntries(rows.map((r) => [r.app, r]));
      for (const service of SERVICE_NAMES) {
        expect({ service, ...seen[service] }).toEqual({
          service,
          app: service,
          user: stack.databaseLogins[service]?.user,
          superuser: false,
          owner: false,
        });
      }
      // Every shard of personal-server shares its login; nothing of ours runs as anyone else.
      expect(rows.filter((r) => r.app === 'personal-server')).toHaveLength(1);
    } finally {
      await admin.end();
    }
  });

  it.each([...SERVICE_NAMES])("refuses %s's login every other service's tables, and creating any", async (self) => {
    const admin = new pg.Client({ connectionString: stack.databaseUrl });
    await admin.connect();
    const { rows: tables } = await admin
      .query<{ schema: string; name: string }>(
        `SELECT schemaname AS schema, tablename AS name FROM pg_tables WHERE schemaname = ANY($1) ORDER BY 1, 2`,
        [SERVICE_NAMES.map(schemaOf)],
      )
      .finally(() => admin.end());
    const others = tables.filter((t) => t.schema !== schemaOf(self));
    expect(others.length).toBeGreaterThan(20);
    const client = await connectAs(self);
    try {
      for (const table of others) {
        const target = `"${table.schema}"."${table.name}"`;
        expect({ target, read: await failure(client, `SELECT 1 FROM ${target} LIMIT 1`) }).toEqual({
          target,
          read: '42501',
        });
        expect({ target, write: await failure(client, `DELETE FROM ${target}`) }).toEqual({ target, write: '42501' });
      }
      for (const schema of SERVICE_NAMES.map(schemaOf)) {
        expect(await failure(client, `CREATE TABLE "${schema}".intruder (id int)`)).toBe('42501');
      }
    } finally {
      await client.end();
    }
  });

  it("refuses the audit service's login to change, empty or unguard the log, even as audit_writer", async () => {
    const client = await connectAs('audit');
    try {
      await expect(client.query('SELECT count(*) FROM audit.audit_entries')).resolves.toBeDefined();
      for (const asWriter of [false, true]) {
        if (asWriter) await client.query('SET ROLE audit_writer');
        for (const table of ['audit_entries', 'audit_nodes', 'checkpoints']) {
          const target = `audit.${table}`;
          expect(await failure(client, `ALTER TABLE ${target} DISABLE TRIGGER ALL`)).toBe('42501');
          expect(await failure(client, `ALTER TABLE ${target} DISABLE TRIGGER ${table}_append_only`)).toBe('42501');
          expect(await failure(client, `DELETE FROM ${target}`)).toBe('42501');
          expect(await failure(client, `TRUNCATE ${target}`)).toBe('42501');
          expect(await failure(client, `DROP TABLE ${target}`)).toBe('42501');
        }
        expect(await failure(client, 'DROP FUNCTION audit.audit_reject_change() CASCADE')).toBe('42501');
      }
    } finally {
      await client.end();
    }
  });
});

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

  /** Resolves once every service has logged a line with this trace id and request id. */
  const everyServiceLogs = (traceId: () => string | undefined, requestId: string) =>
    waitFor(
      'every service to log the trace',
      () => {
        const id = traceId();
        const seen = new Set(
          stack.logs
            .filter((l) => id !== undefined && l.json?.trace_id === id && l.json?.request_id === requestId)
            .map((l) => l.json?.service),
        );
        return Promise.resolve(SERVICE_NAMES.every((s) => seen.has(s)));
      },
      10_000,
    );

  // Sampled (01), the spans go through the SDK's tracer; unsampled (00), nothing records them
  // (exporter none) and the ids alone are answered: the trace id reaches every log either way.
  it.each(['01', '00'])(
    'carries the trace and request ids from the HTTP edge across NATS into every service log (flags %s)',
    async (flags) => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const requestId = `e2e-trace-check-${flags}`;
      const res = await fetch(`${stack.gatewayUrl}/v1/health`, {
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-${flags}`, 'x-request-id': requestId },
      });
      expect(res.headers.get('x-request-id')).toBe(requestId);
      await everyServiceLogs(() => traceId, requestId);
    },
  );

  it('begins a trace at the HTTP edge without a traceparent and carries its id into every service log', async () => {
    const requestId = 'e2e-trace-check-none';
    const res = await fetch(`${stack.gatewayUrl}/v1/health`, { headers: { 'x-request-id': requestId } });
    expect(res.headers.get('x-request-id')).toBe(requestId);
    // The trace id the gateway began, as its own log lines for the request carry it.
    const gatewayTrace = () =>
      stack.logs.find((l) => l.json?.service === 'gateway' && l.json?.request_id === requestId)?.json?.trace_id;
    await everyServiceLogs(() => gatewayTrace() as string | undefined, requestId);
    // A fresh, valid id: not the all-zero one of an invalid span context.
    expect(gatewayTrace()).toMatch(/^[0-9a-f]{32}$/);
    expect(gatewayTrace()).not.toBe('00000000000000000000000000000000');
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
