import 'reflect-metadata';

import { randomUUID } from 'node:crypto';

import { type TestSchema } from '@context-gateway/database/testing';
import { connectNats, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { AUDIT_BATCH_HEADER, consumers, events, MAX_AUDIT_BATCH_EVENTS, streams } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AckPolicy, type Consumer, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { TestingModule } from '@nestjs/testing';
import pg from 'pg';

import { type Env } from '../env.js';
import { BoundedPull, ENVELOPE_BYTES } from './bounded-pull.js';
import { LogModule } from './log.module.js';
import { LogWriterService } from './log-writer.service.js';
import { SigningKeyHolder } from './signing-key.holder.js';
import {
  auditTestEvent,
  type LogTestBed,
  startAuditInstance,
  startLogTestBed,
  testLogger,
} from './testing/log-test-kit.js';
import { verifyStoredLog } from './verify-stored-log.js';
import { WriterQueue } from './writer-queue.js';

const ORG = '0b0e6a3c-4444-4a7b-9c55-0d6f3f9c2a11';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What the writer pulls and has not written yet stays bounded in bytes, not only in messages:
 * group-commit messages of ~200 KB each pile up in the stream while Postgres holds the
 * writer's COPY, and the writer takes in about one pull's worth (one max_payload) plus its
 * queue's two small batches — not every message max_ack_pending would allow.
 */
describe('the audit log writer pulls no more than it has room for', () => {
  const logger = testLogger();
  let bed: LogTestBed;
  let db: TestSchema;
  let nc: NatsConnection;
  let env: Env;
  let admin: pg.Client;
  let instance: TestingModule | undefined;

  async function count(): Promise<number> {
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${db.schema}.audit_entries`);
    return rows[0].n as number;
  }

  beforeAll(async () => {
    // A batch of 20 events is a 20 KB payload budget; max_ack_pending is 80 messages.
    bed = await startLogTestBed({ prefix: 'audit_bounded_pull', logger, env: { AUDIT_BATCH_SIZE: '20' } });
    ({ db, nc, env } = bed);
    admin = new pg.Client({ connectionString: db.url, application_name: 'audit-bounded-pull-admin' });
    await admin.connect();
    instance = await startAuditInstance({ pool: db.pool, nc, env, logger, imports: [LogModule] });
  }, 30_000);

  afterAll(async () => {
    await admin?.query('ROLLBACK').catch(() => undefined);
    await instance?.close().catch(() => undefined);
    await admin?.end();
    await bed?.stop();
  });

  it('holds about one pull of large group-commit messages while appends wait, then appends them all once', async () => {
    const writer = instance!.get(LogWriterService);
    for (let i = 0; i < 100 && !writer.stats.active; i += 1) await sleep(100);
    expect(writer.stats.active).toBe(true);

    // Appends wait: the writer's COPY queues behind this lock until the transaction ends.
    await admin.query('BEGIN');
    await admin.query(`LOCK TABLE ${db.schema}.audit_entries IN ACCESS EXCLUSIVE MODE`);

    const publisher = new JetStreamPublisher(nc);
    const messages = 30;
    for (let m = 0; m < messages; m += 1) {
      const batch = Array.from({ length: MAX_AUDIT_BATCH_EVENTS }, (_, i) => ({
        ...auditTestEvent(m * MAX_AUDIT_BATCH_EVENTS + i, ORG),
        // About 800 bytes an event: ~200 KB a message, 6 MB in all.
        resource: `connection:${'x'.repeat(780)}`,
      }));
      await publisher.publish(
        events.auditRecordedBatch,
        { batchId: randomUUID(), events: batch },
        { headers: { [AUDIT_BATCH_HEADER]: '1' } },
      );
    }
    // Time for the writer to pull all it would.
    await sleep(2_000);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(streams.audit.name, consumers.auditLogWriter.durable);
    // One pull (max_payload, 1 MB here: 5 messages) and what the queue and the pipeline hold:
    // not all 30, which the consumer's max_ack_pending (80) would let through.
    expect(info.num_ack_pending).toBeLessThanOrEqual(8);
    expect(info.num_pending).toBeGreaterThanOrEqual(messages - 8);
    expect(await count()).toBe(0);

    await admin.query('COMMIT');
    const total = messages * MAX_AUDIT_BATCH_EVENTS;
    const deadline = Date.now() + 40_000;
    while ((await count()) < total && Date.now() < deadline) await sleep(200);
    await sleep(500);
    expect(await count()).toBe(total);
    const key = await instance!.get(SigningKeyHolder).get();
    expect(await verifyStoredLog(db.pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN)).toMatchObject({
      ok: true,
      treeSize: total,
    });
  }, 90_000);
});

/** How `promise` stands after at most `ms`: a bound on "settles", not a timing being measured. */
async function within(promise: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  const outcome = promise.then(
    () => 'resolved' as const,
    () => 'rejected' as const,
  );
  try {
    return await Promise.race([outcome, pending]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Each way one of BoundedPull's pulls ends, against a real stream: a stop() while a pull is
 * being set up, a message no pull can hold, a pull whose messages add up to exactly its
 * max_bytes. None may leave the writer session hanging, spinning, or failing for nothing.
 */
describe('a bounded pull ends', () => {
  let nats: PrivateNats;
  let nc: NatsConnection;
  let streamCount = 0;

  beforeAll(async () => {
    nats = await startPrivateNats();
    nc = await connectNats({
      url: nats.url,
      name: 'audit-bounded-pull-ends',
      logger: testLogger(),
      bootTimeoutMs: 5_000,
    });
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  /** A fresh stream holding one message of each size in `payloads`, with durable pull consumers named `durables`. */
  async function streamWith(payloads: number[], durables: string[]): Promise<string> {
    streamCount += 1;
    const name = `BOUNDED_PULL_${streamCount}`;
    const subject = `bounded-pull.${streamCount}`;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: [subject] });
    for (const size of payloads) await jetstream(nc).publish(subject, new Uint8Array(size));
    for (const durable of durables)
      await jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit });
    return name;
  }

  it('at once when stop() lands while the pull is being set up', async () => {
    const stream = await streamWith([100], ['writer']);
    const consumer = await jetstream(nc).consumers.get(stream, 'writer');
    let stopped: Promise<void> | undefined;
    // The real consumer, with the writer session stopping the moment it hands a fetch over.
    const stopsOnFetch: Pick<Consumer, 'fetch'> = {
      fetch: async (opts) => {
        const fetched = await consumer.fetch(opts);
        stopped = pull.stop();
        return fetched;
      },
    };
    const pull = new BoundedPull(stopsOnFetch, 1_024 * 1_024);
    expect(await within(pull.run(new WriterQueue<JsMsg>(10)), 3_000)).toBe('resolved');
    expect(await within(stopped!, 1_000)).toBe('resolved');
  }, 10_000);

  it('the writer session, rather than asking again, when the next message is larger than any pull', async () => {
    const stream = await streamWith([40_000], ['writer']);
    // Pulls of 1,000 bytes plus the envelope: the 40 KB message fits none.
    const pull = new BoundedPull(await jetstream(nc).consumers.get(stream, 'writer'), 1_000);
    const queue = new WriterQueue<JsMsg>(1);
    const running = pull.run(queue);
    running.catch(() => undefined);
    const outcome = await within(running, 10_000);
    await pull.stop();
    expect(outcome).toBe('rejected');
    await expect(running).rejects.toThrow(/larger than a pull/);
    expect(queue.length).toBe(0);
  }, 20_000);

  it('with the next pull, not a new session, when its messages fill exactly max_bytes', async () => {
    const payloads = [12_000, 12_000, 100];
    // "twin" measures what the server counts of each message: its name is as long as
    // "writer"'s, so the ack replies it gets are as long too.
    const stream = await streamWith(payloads, ['writer', 'twinnn']);
    const replies = createInbox();
    const sub = nc.subscribe(replies, { max: 2 });
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.twinnn`, JSON.stringify({ batch: 2 }), { reply: replies });
    const counted: Msg[] = [];
    for await (const m of sub) counted.push(m);
    // What the server counts against max_bytes: subject, reply subject, payload (no headers here).
    const firstTwo = counted.reduce((sum, m) => sum + m.subject.length + m.reply!.length + m.data.length, 0);
    expect(counted.map((m) => m.data.length)).toEqual(payloads.slice(0, 2));

    // A pull of exactly the first two messages' bytes (the queue's own room is smaller).
    const pull = new BoundedPull(await jetstream(nc).consumers.get(stream, 'writer'), firstTwo - ENVELOPE_BYTES);
    const queue = new WriterQueue<JsMsg>(1);
    let failure: unknown;
    const running = pull.run(queue).catch((error: unknown) => {
      failure = error;
    });
    const taken: JsMsg[] = [];
    const deadline = Date.now() + 20_000;
    while (taken.length < payloads.length && failure === undefined && Date.now() < deadline) {
      await queue.waitForBatch(200);
      taken.push(...queue.take());
    }
    await pull.stop();
    queue.close();
    await running;
    expect(failure).toBeUndefined();
    expect(taken.map((m) => m.data.length)).toEqual(payloads);
  }, 40_000);
});
