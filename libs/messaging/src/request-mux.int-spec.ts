import { randomUUID } from 'node:crypto';

import { create, toBinary } from '@bufbuild/protobuf';
import { runWithRequestContext } from '@context-gateway/observability';
import { defineRpc, GetReadinessResponseSchema, SyncJobSchema } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';

import { Header, ReplyStatus } from './headers.js';
import { RpcClient } from './rpc-client.js';

// RpcClient's requests through its own inbox mux (request-mux.ts), against the real server: the
// replies, the three ways a request fails (timeout, no responders, the connection closed or
// draining under it) with the codes nc.request() gave, and the inbox under the connection's
// inboxPrefix. Subjects are unique to this file so parallel runs never meet.
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
const late = contract('late', 150);
const silent = contract('silent', 120);
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
const seen: { reply: string; requestId: string | undefined; deadline: string | undefined }[] = [];

beforeAll(async () => {
  server = await connect({ servers: NATS_URL });
  server.subscribe(echo.subject, {
    callback: (_error, msg) => {
      seen.push({
        reply: msg.reply ?? '',
        requestId: msg.headers?.get(Header.requestId),
        deadline: msg.headers?.get(Header.deadline),
      });
      answer(msg, true);
    },
  });
  // Answers after its caller's deadline (150 ms): the reply arrives for a request already failed.
  server.subscribe(late.subject, { callback: (_error, msg) => void setTimeout(() => answer(msg, true), 400) });
  server.subscribe(silent.subject, { callback: () => undefined });
  await server.flush();
});

afterAll(async () => {
  await server.close();
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
    } finally {
      await nc.close();
    }
  });

  it('fails a request past its own deadline with deadline_exceeded, not its neighbours, and drops its late reply', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const client = new RpcClient(nc);
      const started = performance.now();
      const [quick, lateOne, slowOk] = await Promise.allSettled([
        client.request(silent, {}),
        client.request(late, {}),
        // Asked after the two shorter ones and still answered: one sweep fails only what is due.
        client.request(late, {}, { timeoutMs: 2_000 }),
      ]);
      expect(quick).toMatchObject({ status: 'rejected', reason: { code: 'deadline_exceeded' } });
      expect(lateOne).toMatchObject({ status: 'rejected', reason: { code: 'deadline_exceeded' } });
      expect(slowOk).toMatchObject({ status: 'fulfilled', value: { ready: true } });
      // The 120 ms one did not wait for anything longer (the answer above took ~400 ms).
      expect(performance.now() - started).toBeGreaterThanOrEqual(390);
      // The late replies of the failed request arrived meanwhile; the connection still answers.
      await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
    } finally {
      await nc.close();
    }
  });

  it('times a request out at its own timeout, not later', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const client = new RpcClient(nc);
      const long = client.request(silent, {}, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      const started = performance.now();
      // A shorter request after a longer one re-arms the sweep for its own, earlier deadline.
      await expect(client.request(silent, {}, { timeoutMs: 100 })).rejects.toMatchObject({
        code: 'deadline_exceeded',
      });
      expect(performance.now() - started).toBeLessThan(2_500);
      await nc.close();
      expect(await long).toMatchObject({ code: 'service_unavailable' });
    } finally {
      if (!nc.isClosed()) await nc.close();
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

  it('fails what waits when the connection closes, and refuses requests once it is closed or draining', async () => {
    const nc = await connect({ servers: NATS_URL });
    const client = new RpcClient(nc);
    await expect(client.request(echo, {})).resolves.toMatchObject({ ready: true });
    const waiting = client.request(silent, {}, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    await nc.flush();
    await nc.close();
    expect(await waiting).toMatchObject({
      code: 'service_unavailable',
      message: `The request on ${silent.subject} could not be sent`,
    });
    await expect(client.request(echo, {})).rejects.toMatchObject({ code: 'service_unavailable' });

    const draining = await connect({ servers: NATS_URL });
    const drained = new RpcClient(draining);
    await expect(drained.request(echo, {})).resolves.toMatchObject({ ready: true });
    const drain = draining.drain();
    await expect(drained.request(echo, {})).rejects.toMatchObject({ code: 'service_unavailable' });
    await drain;
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
