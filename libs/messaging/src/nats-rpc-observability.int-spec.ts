import 'reflect-metadata';

import { randomBytes, randomUUID } from 'node:crypto';
import { connect as connectTcp } from 'node:net';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import {
  activeTraceIds,
  createLogger,
  currentRequestContext,
  initTracing,
  type TracingHandle,
  type TracingOptions,
} from '@context-gateway/observability';
import {
  check,
  defineShardRpc,
  ErrorReplySchema,
  GetReadinessResponseSchema,
  type SyncJob,
  SyncJobSchema,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, createInbox, headers, type NatsConnection } from '@nats-io/transport-node';
import { Controller, type INestMicroservice, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import { SpanKind } from '@opentelemetry/api';
import { Registry } from 'prom-client';

import { Header, ReplyStatus } from './headers.js';
import { MessagingMetrics } from './messaging.metrics.js';
import { NatsRpcServer } from './nats-rpc.server.js';
import { RpcErrorPassthroughFilter } from './rpc-exception.filter.js';
import { RpcHandler } from './rpc-handler.decorator.js';

// What the server reports besides the reply: trace context, request ids, metrics; and that it
// lets delivered messages finish on close. Real NATS; subjects unique to this file.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = `test${randomUUID().slice(0, 8)}`;
const SHARD = 3;
const probe = defineShardRpc({
  callers: ['gateway'],
  prefix,
  verb: 'probe',
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  validate: (job) => [...check.uuid(job.connectionId, 'connectionId')],
});

type Span = Parameters<NonNullable<TracingOptions['spanProcessors']>[number]['onEnd']>[0];
/** The spans this process recorded (a span processor of our own: no exporter package needed). */
const finished: Span[] = [];
const recorder: NonNullable<TracingOptions['spanProcessors']>[number] = {
  onStart: () => undefined,
  onEnd: (span) => void finished.push(span),
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/** Lets a test hold a request inside the handler (jobId 'hold'): told when it is in, it waits for release. */
let entered: () => void = () => undefined;
let release: () => void = () => undefined;

@Controller()
class ProbeHandler {
  /** Answers with what the handler saw: the active trace id and the request context's id. */
  @RpcHandler(probe)
  async probe(@Payload() job: SyncJob) {
    if (job.jobId === 'conflict') throw new AppError('conflict', 'already there');
    if (job.jobId === 'hold') {
      entered();
      await new Promise<void>((resolve) => (release = resolve));
    }
    return { service: activeTraceIds().traceId ?? '', instance: currentRequestContext()?.requestId ?? '' };
  }
}

@Module({ controllers: [ProbeHandler] })
class ProbeModule {}

let tracing: TracingHandle;
let nc: NatsConnection;
const registry = new Registry();
const metrics = new MessagingMetrics(registry);
const logger = createLogger({ service: 'messaging-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function start(shard = SHARD): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice(ProbeModule, {
    strategy: new NatsRpcServer({
      connection: nc,
      queue: prefix,
      logger,
      shard,
      metrics,
    }),
    logger: false,
  });
  app.useGlobalFilters(new RpcErrorPassthroughFilter());
  await app.listen();
  return app;
}

let app: INestMicroservice;

beforeAll(async () => {
  tracing = await initTracing({ service: 'messaging-test', exporter: 'none', spanProcessors: [recorder] });
  nc = await connect({ servers: NATS_URL });
  app = await start();
});

afterAll(async () => {
  await app.close();
  await nc.drain();
  await tracing.shutdown();
});

const subject = probe.shardSubject?.(SHARD) ?? '';
const body = (jobId: string, connectionId: string = randomUUID()) =>
  toBinary(SyncJobSchema, create(SyncJobSchema, { jobId, connectionId }));

async function send(jobId: string, h = headers(), connectionId?: string, to = subject) {
  const reply = await nc.request(to, body(jobId, connectionId), { timeout: 2_000, headers: h });
  return { status: reply.headers?.get(Header.status), data: reply.data };
}

describe('NatsRpcServer: trace context and request ids', () => {
  it("continues the caller's sampled trace in a server span around the handler", async () => {
    const traceId = randomBytes(16).toString('hex');
    const spanId = randomBytes(8).toString('hex');
    const h = headers();
    h.set('traceparent', `00-${traceId}-${spanId}-01`);
    h.set(Header.requestId, 'req-traced');
    const reply = await send('a', h);
    expect(reply.status).toBe(ReplyStatus.ok);
    const seen = fromBinary(GetReadinessResponseSchema, reply.data);
    expect(seen).toMatchObject({ service: traceId, instance: 'req-traced' });

    const span = finished.find((s) => s.spanContext().traceId === traceId);
    expect(span?.name).toBe(`rpc ${probe.subject}`);
    expect(span?.kind).toBe(SpanKind.SERVER);
    expect(span?.parentSpanContext?.spanId).toBe(spanId);
    expect(span?.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': subject });
  });

  it("keeps an unsampled caller's trace id for the handler (logs) and records no span of it", async () => {
    const traceId = randomBytes(16).toString('hex');
    const h = headers();
    h.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-00`);
    const seen = fromBinary(GetReadinessResponseSchema, (await send('b', h)).data);
    expect(seen.service).toBe(traceId);
    expect(finished.some((s) => s.spanContext().traceId === traceId)).toBe(false);
  });

  it("keeps the request's context through the handler's await", async () => {
    const traceId = randomBytes(16).toString('hex');
    const h = headers();
    h.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
    h.set(Header.requestId, 'req-held');
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const held = send('hold', h);
    held.catch(() => undefined); // awaited below
    await inHandler;
    // Other requests run while this one waits; the held one must still see its own context.
    await send('between');
    release();
    const seen = fromBinary(GetReadinessResponseSchema, (await held).data);
    expect(seen).toMatchObject({ service: traceId, instance: 'req-held' });
  });

  it('gives a request without an id one of its own, different each time', async () => {
    const first = fromBinary(GetReadinessResponseSchema, (await send('c')).data).instance;
    const second = fromBinary(GetReadinessResponseSchema, (await send('c')).data).instance;
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    expect(second).toMatch(/^[0-9a-f-]{36}$/);
    expect(first).not.toBe(second);
  });
});

/**
 * Publishes `body` to `to` with a raw header block, the way a client that checks nothing can
 * (nats.js refuses to build headers like these): our own socket, CONNECT with headers, HPUB.
 * Resolves once the server has processed it (PONG).
 */
async function publishRaw(to: string, replyTo: string, headerBlock: string, body: Uint8Array): Promise<void> {
  const { hostname, port } = new URL(NATS_URL);
  const socket = connectTcp({ host: hostname, port: Number(port) || 4222 });
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen.includes('PONG')) resolve();
        else if (seen.includes('-ERR')) reject(new Error(seen));
      });
      const hdr = Buffer.from(headerBlock, 'latin1');
      socket.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n`);
      socket.write(`HPUB ${to} ${replyTo} ${hdr.length} ${hdr.length + body.length}\r\n`);
      socket.write(Buffer.concat([hdr, body, Buffer.from('\r\nPING\r\n')]));
    });
  } finally {
    socket.destroy();
  }
}

describe('NatsRpcServer: metrics', () => {
  /** A series' value from the registry's own numbers, by its labels. */
  async function value(name: string, labels: Record<string, string>): Promise<number> {
    const metric = registry.getSingleMetric(name);
    const data = await metric?.get();
    const series = data?.values.find(
      (v) =>
        Object.entries(labels).every(([k, want]) => v.labels[k] === want) &&
        (!('metricName' in v) || v.metricName === name || v.metricName === `${name}_count`),
    );
    return series?.value ?? 0;
  }

  it('counts each request by outcome under the catalog template of its subject, and times it', async () => {
    // A shard's number is folded: one series for every shard's subject.
    const label = `${prefix}.v1.shard.*.probe`;
    const before = {
      ok: await value('nats_rpc_server_requests_total', { subject: label, outcome: 'ok' }),
      conflict: await value('nats_rpc_server_requests_total', { subject: label, outcome: 'conflict' }),
      invalid: await value('nats_rpc_server_requests_total', { subject: label, outcome: 'validation_failed' }),
      timed: await value('nats_rpc_server_duration_seconds', { subject: label }),
    };
    await send('ok-1');
    await send('ok-2');
    expect((await send('conflict')).status).toBe(ReplyStatus.error);
    const invalid = await send('x', headers(), 'not-a-uuid');
    expect(fromBinary(ErrorReplySchema, invalid.data).code).toBe('validation_failed');

    expect(await value('nats_rpc_server_requests_total', { subject: label, outcome: 'ok' })).toBe(before.ok + 2);
    expect(await value('nats_rpc_server_requests_total', { subject: label, outcome: 'conflict' })).toBe(
      before.conflict + 1,
    );
    expect(await value('nats_rpc_server_requests_total', { subject: label, outcome: 'validation_failed' })).toBe(
      before.invalid + 1,
    );
    expect(await value('nats_rpc_server_duration_seconds', { subject: label })).toBe(before.timed + 4);
  });

  it('answers a message whose headers cannot be read with malformed_request, counts it, and keeps serving', async () => {
    const label = `${prefix}.v1.shard.*.probe`;
    const before = {
      malformed: await value('nats_rpc_server_requests_total', { subject: label, outcome: 'malformed_request' }),
      timed: await value('nats_rpc_server_duration_seconds', { subject: label }),
    };
    // A header name with a space: nats.js throws when the server reads msg.headers.
    const inbox = createInbox();
    const replies = nc.subscribe(inbox, { max: 1, timeout: 2_000 });
    await nc.flush();
    await publishRaw(subject, inbox, 'NATS/1.0\r\nbad key: x\r\n\r\n', body('bad-headers'));
    let reply: { status: string | undefined; data: Uint8Array } | undefined;
    for await (const m of replies) reply = { status: m.headers?.get(Header.status), data: m.data };

    expect(reply?.status).toBe(ReplyStatus.error);
    expect(fromBinary(ErrorReplySchema, reply?.data ?? new Uint8Array())).toMatchObject({
      code: 'malformed_request',
      message: 'The message headers cannot be read',
    });
    expect(await value('nats_rpc_server_requests_total', { subject: label, outcome: 'malformed_request' })).toBe(
      before.malformed + 1,
    );
    expect(await value('nats_rpc_server_duration_seconds', { subject: label })).toBe(before.timed + 1);
    // Still answering, and not counting that message as in flight (close below would wait for it).
    expect((await send('after-bad-headers')).status).toBe(ReplyStatus.ok);
  });
});

describe('NatsRpcServer: close', () => {
  it('answers a message already being handled before close returns', async () => {
    // A shard of its own: the only server on its subject.
    const own = await start(SHARD + 1);
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const held = send('hold', headers(), undefined, probe.shardSubject?.(SHARD + 1));
    held.catch(() => undefined); // awaited below; a failed expectation before must not leave it unhandled
    await inHandler;
    let closed = false;
    const closing = own.close().then(() => void (closed = true));
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(closed).toBe(false);
    } finally {
      release();
    }
    await expect(held).resolves.toMatchObject({ status: ReplyStatus.ok });
    await closing;
    expect(closed).toBe(true);
  });
});
