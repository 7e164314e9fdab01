import 'reflect-metadata';

import { randomUUID } from 'node:crypto';

import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { TestClock } from '@context-gateway/clock/testing';
import { connectNats, ensureStreams } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import {
  AUDIT_BATCH_HEADER,
  AuditAction,
  AuditEventBatchSchema,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  streams,
} from '@context-gateway/proto';
import { NATS_CONNECTION, ProblemFilter, SERVICE_ENV } from '@context-gateway/service-kit';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { Controller, Global, Module, Req } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { z } from 'zod';

import { Route } from '../http/route.decorator.js';
import { AuditModule } from './audit.module.js';
import { AuditRecorder } from './audit-recorder.js';
import { setAuditSubject } from './audit-subject.js';

const ORG = '5f0c6f8e-3d43-4a7b-9c55-0d6f3f9c2a11';
/** The time every recorded event must carry: the injected clock's, not the machine's. */
const clock = new TestClock(new Date('2026-05-04T03:02:01Z'));
/** What the audited handlers did: the test's proof that nothing ran. */
const executed: string[] = [];

@Controller('t')
class ProbeController {
  @Route({
    method: 'POST',
    path: 'invoke',
    summary: 'probe',
    tags: ['t'],
    auth: 'none',
    errors: [],
    body: z.object({ n: z.number() }).strict(),
    success: { status: 200, description: 'ok' },
    audit: { action: 'capability_invocation', capability: 'probe:run', intent: true },
  })
  invoke(@Req() request: object) {
    setAuditSubject(request, { orgId: ORG, userId: 'user-1', actorKind: 'api_key', actorId: 'key-1' });
    executed.push('invoke');
    return { ok: true };
  }

  @Route({
    method: 'GET',
    path: 'read',
    summary: 'probe',
    tags: ['t'],
    auth: 'none',
    errors: [],
    success: { status: 200, description: 'ok' },
    audit: { action: 'data_query' },
  })
  read(@Req() request: object) {
    setAuditSubject(request, { orgId: ORG });
    executed.push('read');
    return { rows: 1 };
  }
}

describe('gateway audit recorder (real NATS JetStream)', () => {
  const logger = createLogger({ service: 'gateway-test', level: 'silent' });
  let nats: PrivateNats;
  let nc: NatsConnection;
  let app: NestFastifyApplication;
  let baseUrl: string;
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${baseUrl.replace('[::1]', '127.0.0.1')}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { statusCode: response.status, body: text, json: () => JSON.parse(text) as Record<string, unknown> };
  };

  beforeAll(async () => {
    nats = await startPrivateNats();
    nc = await connectNats({ url: nats.url, name: 'audit-recorder-test', logger, bootTimeoutMs: 5_000 });
    await ensureStreams(nc, [streams.audit], logger);
    // What the runtime module provides in the real service: the connection, the env, the clock.
    @Global()
    @Module({
      providers: [
        { provide: NATS_CONNECTION, useValue: nc },
        { provide: SERVICE_ENV, useValue: { AUDIT_PUBLISH_TIMEOUT_MS: 500 } },
        { provide: Clock, useValue: clock },
      ],
      exports: [NATS_CONNECTION, SERVICE_ENV, Clock],
    })
    class RuntimeStub {}
    const moduleRef = await Test.createTestingModule({
      imports: [RuntimeStub, AuditModule],
      controllers: [ProbeController],
    }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter());
    app.useGlobalFilters(new ProblemFilter(logger));
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = await app.getUrl();
  }, 20_000);

  afterAll(async () => {
    await app?.close();
    await nc?.close().catch(() => undefined);
    await nats?.stop();
  });

  /** Reads the stream back through the JetStream API: what is there is what was stored, one item per event. */
  async function storedEvents() {
    return (await storedMessages()).flatMap((m) => m.events.map((event) => ({ msgId: m.msgId, event })));
  }

  /** The stream's messages, each with the events it carries (a group-commit batch carries several). */
  async function storedMessages() {
    const api = async <T>(subject: string, body: object) => (await nc.request(subject, JSON.stringify(body))).json<T>();
    const info = await api<{ state: { last_seq: number } }>(`$JS.API.STREAM.INFO.${streams.audit.name}`, {});
    const out = [];
    for (let seq = 1; seq <= info.state.last_seq; seq += 1) {
      const { message } = await api<{ message: { hdrs: string; data: string } }>(
        `$JS.API.STREAM.MSG.GET.${streams.audit.name}`,
        { seq },
      );
      const headers = Buffer.from(message.hdrs, 'base64').toString('utf8');
      const data = Buffer.from(message.data, 'base64');
      const batch = new RegExp(`${AUDIT_BATCH_HEADER}: 1`, 'i').test(headers);
      out.push({
        msgId: /Nats-Msg-Id: (\S+)/.exec(headers)?.[1],
        batchId: batch ? fromBinary(AuditEventBatchSchema, data).batchId : undefined,
        events: batch ? fromBinary(AuditEventBatchSchema, data).events : [fromBinary(AuditEventSchema, data)],
      });
    }
    return out;
  }

  it('records intent before and outcome after an invocation, each acknowledged by the stream', async () => {
    const response = await call('POST', '/t/invoke', { n: 1 });
    expect(response.statusCode).toBe(200);
    expect(executed).toEqual(['invoke']);
    const stored = await storedEvents();
    expect(stored).toHaveLength(2);
    const [intent, outcome] = stored.map((s) => s.event);
    expect(stored.map((s) => s.msgId)).toEqual([intent!.eventId, outcome!.eventId]);
    expect(intent).toMatchObject({
      phase: AuditPhase.INTENT,
      action: AuditAction.CAPABILITY_INVOCATION,
      capability: 'probe:run',
      operation: 'POST /t/invoke',
    });
    expect(outcome).toMatchObject({
      phase: AuditPhase.OUTCOME,
      outcome: AuditOutcome.ALLOWED,
      intentEventId: intent!.eventId,
      orgId: ORG,
      userId: 'user-1',
      actorId: 'key-1',
    });
    expect(outcome!.requestId).not.toBe('');
    expect(timestampDate(intent!.occurredAt!)).toEqual(clock.date());
  });

  it('records a rejected request as an error with its code', async () => {
    const before = (await storedEvents()).length;
    const response = await call('POST', '/t/invoke', { n: 'x' });
    expect(response.statusCode).toBe(422);
    const stored = (await storedEvents()).slice(before).map((s) => s.event);
    expect(stored.map((e) => [e.phase, e.outcome, e.errorCode])).toEqual([
      [AuditPhase.INTENT, AuditOutcome.ALLOWED, ''],
      [AuditPhase.OUTCOME, AuditOutcome.ERROR, 'validation_failed'],
    ]);
  });

  it('a direct record() resolves only once stored, with the event id as Nats-Msg-Id (a retry is stored once)', async () => {
    const recorder = app.get(AuditRecorder);
    const before = (await storedEvents()).length;
    clock.advance(90_000);
    const eventId = await recorder.record({
      action: 'sign_in',
      outcome: 'denied',
      orgId: ORG,
      errorCode: 'unauthenticated',
    });
    await recorder.record({ action: 'sign_in', outcome: 'denied', orgId: ORG }, AuditPhase.COMPLETE, { eventId });
    const stored = (await storedEvents()).slice(before);
    expect(stored.map((s) => s.msgId)).toEqual([eventId]);
    // stamped when recorded, by the clock the service was given
    expect(timestampDate(stored[0]!.event.occurredAt!)).toEqual(clock.date());
  });

  it('group commit: an event id recorded twice in one turn is stored once, the first copy, and both resolve', async () => {
    const recorder = app.get(AuditRecorder);
    const before = (await storedMessages()).length;
    const eventId = randomUUID();
    const copies = ['first', 'second'].map((resource) =>
      recorder.record({ action: 'data_query', outcome: 'allowed', orgId: ORG, resource }, AuditPhase.COMPLETE, {
        eventId,
      }),
    );
    const other = recorder.record({ action: 'data_query', outcome: 'allowed', orgId: ORG, resource: 'other' });
    const [first, second, otherId] = await Promise.all([...copies, other]);
    expect([first, second]).toEqual([eventId, eventId]);
    const [message, ...more] = (await storedMessages()).slice(before);
    expect(more).toEqual([]);
    expect(message?.events.map((e) => [e.eventId, e.resource])).toEqual([
      [eventId, 'first'],
      [otherId, 'other'],
    ]);
  });

  it('group commit: events recorded in one turn share one stream message and one ack; a bad one fails alone', async () => {
    const recorder = app.get(AuditRecorder);
    const before = (await storedMessages()).length;
    const records = Array.from({ length: 40 }, (_, i) =>
      recorder.record({ action: 'data_query', outcome: 'allowed', orgId: ORG, resource: `probe:${i}` }),
    );
    const bad = recorder.record({ action: 'data_query', outcome: 'allowed', orgId: 'not-a-uuid' });
    const ids = await Promise.all(records);
    await expect(bad).rejects.toMatchObject({ code: 'internal' });
    const [message, ...more] = (await storedMessages()).slice(before);
    expect(more).toEqual([]);
    // One message: an AuditEventBatch, its batch id the Nats-Msg-Id, the events in order.
    expect(message?.batchId).toBeDefined();
    expect(message?.msgId).toBe(message?.batchId);
    expect(message?.events.map((e) => e.eventId)).toEqual(ids);
    expect(message?.events.map((e) => e.resource)).toEqual(ids.map((_, i) => `probe:${i}`));

    // A lone event still goes out as a plain AuditEvent under its own id.
    const alone = await recorder.record({ action: 'data_query', outcome: 'allowed', orgId: ORG });
    const [single] = (await storedMessages()).slice(before + 1);
    expect(single).toMatchObject({ msgId: alone, batchId: undefined });
  });

  it('with NATS down the request fails with 503 audit_unavailable and the handler never runs', async () => {
    executed.length = 0;
    await nats.kill();
    const invoke = await call('POST', '/t/invoke', { n: 2 });
    expect(invoke.statusCode).toBe(503);
    expect(invoke.json()).toMatchObject({ code: 'audit_unavailable' });
    expect(executed).toEqual([]);
    // An outcome-only route ran its handler but must not answer without its record.
    const read = await call('GET', '/t/read');
    expect(read.statusCode).toBe(503);
    expect(read.json()).toMatchObject({ code: 'audit_unavailable' });
    expect(read.body).not.toContain('rows');
    // A batch that is not stored fails every request in it, each with audit_unavailable.
    const recorder = app.get(AuditRecorder);
    const together = await Promise.allSettled(
      Array.from({ length: 5 }, () => recorder.record({ action: 'data_query', outcome: 'allowed', orgId: ORG })),
    );
    expect(together.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'stored'))).toEqual(
      Array.from({ length: 5 }, () => 'audit_unavailable'),
    );
  }, 15_000);
});
