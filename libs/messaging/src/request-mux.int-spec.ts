import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create, toBinary } from '@bufbuild/protobuf';
import {
  activeTraceIds,
  initTracing,
  runWithRequestContext,
  type TracingHandle,
  withSpan,
} from '@context-gateway/observability';
import { defineRpc, GetReadinessResponseSchema, SyncJobSchema } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  connect,
  type ConnectionOptions,
  errors,
  headers,
  type Msg,
  type NatsConnection,
} from '@nats-io/transport-node';
import { SpanKind } from '@opentelemetry/api';

import { Header, ReplyStatus } from './headers.js';
import { MuxRequestError, type RequestMux, requestMuxOf } from './request-mux.js';
import { RpcClient } from './rpc-client.js';
import { type PrivateNats, startPrivateNats } from './testing/private-nats.js';

// RpcClient's requests through its own inbox mux (request-mux.ts), against the real server: the
// replies, the ways a request fails (timeout, no responders, the connection closed or draining
// under it, the server refusing its publish or its inbox subscription) with the codes
// nc.request() gave, reconnects, no entry left behind, and the inbox under the connection's
// inboxPrefix. Subjects are unique to this file so parallel runs never meet; what needs users
// with limited rights, or a server restart, runs on a private nats-server.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = `test${randomUUID().slice(0, 8)}`;
const contract = (name: string, timeoutMs?: number) =>
  defineRpc({
    callers: ['gateway'],
    subject: `${prefix}.v1.${name}`,
    request: SyncJobSchema,
    response: GetReadinessResponseSchema,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
const echo = contract('echo');
const late = contract('late', 1_000);
const silent = contract('silent', 100);
const nobody = contract('nobody');

const okHeaders = () => {
  const h = headers();
  h.set(Header.status, ReplyStatus.ok);
  return h;
};
const answer = (msg: Msg, ready: boolean) =>
  msg.respond(toBinary(GetReadinessResponseSchema, create(GetReadinessResponseSchema, { ready })), {
    headers: okHeaders(),
  });

let server: NatsConnection;
/** What the echo responder saw of each request: its reply subject and headers. */
const seen: {
  reply: string;
  requestId: string | undefined;
  deadline: string | undefined;
  traceparent: string | undefined;
}[] = [];
let tracing: TracingHandle;

/** The connection's mux, once a request made it (the inbox prefix only matters when making one). */
const muxOf = (nc: NatsConnection): RequestMux => requestMuxOf(nc, undefined);

/** Subscribes the test responders on `nc`: echo answers at once, late after 1.5 s, silent never. */
function respond(nc: NatsConnection, onEcho: (msg: Msg) => void = () => undefined): void {
  nc.subscribe(echo.subject, {
    callback: (_error, msg) => {
      onEcho(msg);
      answer(msg, true);
    },
  });
  // Answers after its caller's deadline (1 s): the reply arrives for a request already failed.
  nc.subscribe(late.subject, { callback: (_error, msg) => void setTimeout(() => answer(msg, true), 1_500) });
  nc.subscribe(silent.subject, { callback: () => undefined });
}

beforeAll(async () => {
  tracing = await initTracing({ service: 'request-mux-test', exporter: 'none' });
  server = await connect({ servers: NATS_URL });
  respond(server, (msg) =>
    seen.push({
      reply: msg.reply ?? '',
      requestId: msg.headers?.get(Header.requestId),
      deadline: msg.headers?.get(Header.deadline),
      traceparent: msg.headers?.get('traceparent'),
    }),
  );
  await server.flush();
});

afterAll(async () => {
  await server.close();
  await tracing.shutdown();
});

describe('RpcClient over its own inbox mux', () => {
  it('answers concurrent requests each with its own reply, on an inbox under the connection prefix', async () => {
    const inbox = `_INBOX_${prefix}`;
    const nc = await connect({ servers: NATS_URL, inboxPrefix: inbox });
    try {
      const client = new RpcClient(nc);
      const other = new RpcClient(nc);
      seen.length = 0;
      const replies = await runWithRequestContext({ requestId: 'req-mux-1' }, () =>
        Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 ? client : other).request(echo, { connectionId: randomUUID() })),
        ),
      );
      expect(replies.every((r) => r.ready)).toBe(true);
      expect(seen).toHaveLength(40);
      // Every reply subject is distinct, and all share one inbox subscription under the prefix.
      expect(new Set(seen.map((s) => s.reply)).size).toBe(40);
      const bases = new Set(seen.map((s) => s.reply.slice(0, s.reply.lastIndexOf('.'))));
      expect(bases.size).toBe(1);
      expect([...bases][0]?.startsWith(`${inbox}.`)).toBe(true);
      // The headers RpcClient writes still travel: the request id and the absolute deadline.
      expect(seen.every((s) => s.requestId === 'req-mux-1')).toBe(true);
      expect(seen.every((s) => Number(s.deadline) > Date.now() - 60_000)).toBe(true);
      expect(muxOf(nc).size).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it('fails a request past its own deadline with deadline_exceeded, not its neighbours, and drops its late reply', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const client = new RpcClient(nc);
      let lateSettled = false;
      const lateOne = client.request(late, {}).finally(() => (lateSettled = true));
      // The 100 ms one fails in a sweep of its own: the 1 s one, asked earlier, is not due yet.
      const quick = client.request(silent, {}).catch(async (error: unknown) => {
        await new Promise(setImmediate);
        return { error, lateSettled };
      });
      const [quickOutcome, lateOutcome, slowOk] = await Promise.allSettled([
        quick,
        lateOne,
        // Asked after the two shorter ones and still answered: one sweep fails only what is due.
        client.request(late, {}, { timeoutMs: 30_000 }),
      ]);
      expect(quickOutcome).toMatchObject({
        status: 'fulfilled',
        value: { error: { code: 'deadline_exceeded' }, lateSettled: false },
      });
      expect(lateOutcome).toMatchObject({ status: 'rejected', reason: { code: 'deadline_exceeded' } });
      expect(slowOk).toMatchObject({ status: 'fulfilled', value: { ready: true } });
      // The late replies of the failed request arrived meanwhile; the connection still answers.
      await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
      expect(muxOf(nc).size).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it('times a request out at its own timeout, not later', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const client = new RpcClient(nc);
      // Past Jest's 60 s: if the sweep stayed armed for it, the short request below would hang.
      const long = client.request(silent, {}, { timeoutMs: 600_000 }).catch((e: unknown) => e);
      // A shorter request after a longer one re-arms the sweep for its own, earlier deadline.
      await expect(client.request(silent, {}, { timeoutMs: 100 })).rejects.toMatchObject({
        code: 'deadline_exceeded',
      });
      const mux = muxOf(nc);
      expect(mux.size).toBe(1);
      await nc.close();
      expect(await long).toMatchObject({ code: 'service_unavailable' });
      expect(mux.size).toBe(0);
    } finally {
      if (!nc.isClosed()) await nc.close();
    }
  });

  it('sends the active trace context with the request', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      seen.length = 0;
      const outer = await withSpan('caller', { kind: SpanKind.INTERNAL }, async () => {
        await new RpcClient(nc).request(echo, {});
        return activeTraceIds();
      });
      expect(outer.traceId).toMatch(/^[0-9a-f]{32}$/);
      // The request's own client span, a child of the caller's: same trace, its own span id.
      const [, traceId, spanId] = seen[0]?.traceparent?.split('-') ?? [];
      expect(traceId).toBe(outer.traceId);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(spanId).not.toBe(outer.spanId);
    } finally {
      await nc.close();
    }
  });

  it('turns no responders into service_unavailable', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      await expect(new RpcClient(nc).request(nobody, {})).rejects.toMatchObject({
        code: 'service_unavailable',
        message: `No service answers on ${nobody.subject}`,
      });
    } finally {
      await nc.close();
    }
  });

  it('fails what waits when the connection closes, and refuses requests once it is closed', async () => {
    const nc = await connect({ servers: NATS_URL });
    const client = new RpcClient(nc);
    await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
    const mux = muxOf(nc);
    const waiting = client.request(silent, {}, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    await nc.flush();
    await nc.close();
    expect(await waiting).toMatchObject({
      code: 'service_unavailable',
      message: `The request on ${silent.subject} could not be sent`,
    });
    expect(mux.size).toBe(0);
    await expect(client.request(echo, {})).rejects.toMatchObject({ code: 'service_unavailable' });
  });

  it('fails what waits when the connection drains, and refuses requests while it drains', async () => {
    const nc = await connect({ servers: NATS_URL });
    const client = new RpcClient(nc);
    await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
    const mux = muxOf(nc);
    // Past Jest's 60 s: it can only end by the drain.
    const waiting = client.request(silent, {}, { timeoutMs: 600_000 }).catch((e: unknown) => e);
    await nc.flush();
    const drain = nc.drain();
    await expect(client.request(echo, {})).rejects.toMatchObject({ code: 'service_unavailable' });
    await drain;
    expect(await waiting).toMatchObject({ code: 'service_unavailable' });
    expect(mux.size).toBe(0);
  });

  it('refuses a timeout under a millisecond, as nc.request() did', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      await expect(new RpcClient(nc).request(echo, {}, { timeoutMs: 0.5 })).rejects.toMatchObject({
        code: 'service_unavailable',
      });
    } finally {
      await nc.close();
    }
  });
});

describe('RpcClient over its own inbox mux, on a private server with limited rights', () => {
  // `limited` may publish only under this file's prefix and subscribe only there and under its
  // own inbox prefix, as a service's generated rights allow (nats-permissions.ts, inboxPrefix).
  const limitedInbox = '_INBOX.limited';
  const refused = defineRpc({
    callers: ['gateway'],
    subject: `deny${prefix}.v1.refused`,
    request: SyncJobSchema,
    response: GetReadinessResponseSchema,
  });
  const ping = `${prefix}.ping`;
  let dir: string;
  let nats: PrivateNats;
  let responder: NatsConnection;
  const options = (user: string, extra: Partial<ConnectionOptions> = {}): ConnectionOptions => ({
    servers: nats.url,
    user,
    pass: 'p',
    reconnectTimeWait: 50,
    maxReconnectAttempts: -1,
    ...extra,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cg-mux-'));
    const configFile = join(dir, 'auth.conf');
    writeFileSync(
      configFile,
      `authorization {
  users = [
    { user: limited, password: p, permissions: { publish: { allow: ["${prefix}.>"] }, subscribe: { allow: ["${prefix}.>", "${limitedInbox}.>"] } } }
    { user: responder, password: p }
  ]
}
`,
    );
    nats = await startPrivateNats({ configFile });
    responder = await connect(options('responder'));
    respond(responder);
    await responder.flush();
  });

  afterAll(async () => {
    await responder?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('receives replies under the inbox prefix its rights are limited to', async () => {
    const nc = await connect(options('limited', { inboxPrefix: limitedInbox }));
    try {
      await expect(new RpcClient(nc).request(echo, {})).resolves.toMatchObject({ ready: true });
    } finally {
      await nc.close();
    }
  });

  it('fails what waits at once when the server refuses the inbox subscription, and the connection still reads', async () => {
    // No inboxPrefix: the mux subscribes under _INBOX., which `limited` may not.
    const nc = await connect(options('limited'));
    try {
      let pings = 0;
      nc.subscribe(ping, { callback: () => void (pings += 1) });
      await nc.flush();
      const client = new RpcClient(nc);
      const firstMux = requestMuxOf(nc, undefined); // the one the client's first request goes through
      // Past Jest's 60 s: only the refusal can end it in time.
      const first = await client.request(echo, {}, { timeoutMs: 600_000 }).catch((e: unknown) => e);
      expect(first).toMatchObject({ code: 'service_unavailable' });
      const cause = (first as Error).cause;
      expect(cause).toBeInstanceOf(MuxRequestError);
      expect((cause as MuxRequestError).reason).toBe('closed');
      expect((cause as Error).cause).toBeInstanceOf(errors.PermissionViolationError);
      expect(firstMux.size).toBe(0);
      // The connection still reads: its other subscription receives, and a PING is answered.
      responder.publish(ping);
      await responder.flush();
      await nc.flush();
      expect(pings).toBe(1);
      // The dead mux left: the next request subscribes a new inbox (refused again, here).
      const second = await client.request(echo, {}, { timeoutMs: 600_000 }).catch((e: unknown) => e);
      expect(second).toMatchObject({ code: 'service_unavailable' });
      const refusedInbox = (e: unknown) =>
        ((e as Error).cause as Error).cause as InstanceType<typeof errors.PermissionViolationError>;
      expect(refusedInbox(second).subject).not.toBe(refusedInbox(first).subject);
    } finally {
      await nc.close();
    }
  });

  it('fails a request at once when the server refuses its publish, not its neighbours', async () => {
    const nc = await connect(options('limited', { inboxPrefix: limitedInbox }));
    try {
      const client = new RpcClient(nc);
      const neighbour = client.request(late, {}, { timeoutMs: 30_000 });
      // Past Jest's 60 s: only the refusal can end it in time.
      const error = await client.request(refused, {}, { timeoutMs: 600_000 }).catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'service_unavailable',
        message: `NATS refused the request on ${refused.subject}`,
      });
      const cause = (error as Error).cause as MuxRequestError;
      expect(cause.reason).toBe('refused');
      expect(cause.cause).toBeInstanceOf(errors.PermissionViolationError);
      await expect(neighbour).resolves.toMatchObject({ ready: true });
      await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
      expect(muxOf(nc).size).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it('keeps its inbox across a server restart', async () => {
    const nc = await connect(options('limited', { inboxPrefix: limitedInbox }));
    try {
      const client = new RpcClient(nc);
      await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
      const mux = muxOf(nc);
      // Sent before the restart, never answered: it ends at its own deadline, not earlier.
      const lost = client.request(silent, {}, { timeoutMs: 1_000 }).catch((e: unknown) => e);
      await nc.flush();
      const back = Promise.all([reconnected(nc), reconnected(responder)]);
      await nats.restart();
      await back;
      await responder.flush();
      expect(await lost).toMatchObject({ code: 'deadline_exceeded' });
      // The same mux, its subscription renewed by nats.js on reconnect, answers again.
      await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
      expect(muxOf(nc)).toBe(mux);
      expect(mux.size).toBe(0);
    } finally {
      await nc.close();
    }
  });
});

/** Resolves at the connection's next reconnect. */
async function reconnected(nc: NatsConnection): Promise<void> {
  for await (const status of nc.status()) if (status.type === 'reconnect') return;
}
