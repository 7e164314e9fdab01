import { randomUUID } from 'node:crypto';

import { create, toBinary } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { createLogger } from '@context-gateway/observability';
import {
  check,
  deadLetterSubject,
  defineEvent,
  type StreamDescriptor,
  streams,
  SyncJobSchema,
  SyncReason,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { consumeEvents, type DeadLetter } from './jetstream-consumer.js';
import { JetStreamPublisher } from './jetstream-publisher.js';
import { ensureStreams } from './jetstream-streams.js';

// Each test gets its own stream on the real JetStream; all are deleted afterwards.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const logger = createLogger({ service: 'jetstream-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let nc: NatsConnection;
const created: string[] = [];

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
});
afterAll(async () => {
  const jsm = await jetstreamManager(nc);
  for (const name of created) await jsm.streams.delete(name).catch(() => undefined);
  await nc.drain();
});

async function freshStream() {
  const id = randomUUID().slice(0, 8);
  const stream: StreamDescriptor = {
    name: `TEST_${id.toUpperCase()}`,
    subjects: [`test${id}.v1.jobs.>`],
    retention: 'workqueue',
    duplicateWindowMs: 60_000,
    maxAgeMs: 3_600_000,
    description: 'test stream',
  };
  const event = defineEvent({
    publishers: ['sync-worker'],
    stream,
    subject: `test${id}.v1.jobs.requested`,
    message: SyncJobSchema,
    messageId: (job) => job.jobId,
    validate: (job) => [...check.uuid(job.connectionId, 'connectionId')],
  });
  await ensureStreams(nc, [stream], logger);
  created.push(stream.name);
  return { stream, event };
}

const job = (jobId = randomUUID()) => ({
  jobId,
  connectionId: randomUUID(),
  reason: SyncReason.MANUAL,
  requestedAt: timestampNow(),
});
const waitFor = async (cond: () => boolean, ms = 10_000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('JetStream publish and durable consumers', () => {
  it('stores a message once when it is published twice with the same id', async () => {
    const { stream, event } = await freshStream();
    const publisher = new JetStreamPublisher(nc);
    const j = job();
    const first = await publisher.publish(event, j);
    const second = await publisher.publish(event, j);
    expect(first.duplicate).toBe(false);
    expect(second).toMatchObject({ duplicate: true, seq: first.seq });
    const info = await (await jetstreamManager(nc)).streams.info(stream.name);
    expect(info.state.messages).toBe(1);
    // ensureStreams is idempotent: a second service starting does not fail or reset it
    await ensureStreams(nc, [stream], logger);
  });

  it('refuses to publish an invalid message', async () => {
    const { event } = await freshStream();
    await expect(new JetStreamPublisher(nc).publish(event, { jobId: 'x', connectionId: 'nope' })).rejects.toMatchObject(
      { code: 'validation_failed' },
    );
  });

  it('redelivers a failed message and acks it once the handler succeeds', async () => {
    const { event } = await freshStream();
    const attempts: number[] = [];
    const consumer = await consumeEvents(
      nc,
      event,
      { durable: 'w', retryBaseMs: 10 },
      (_m, d) => {
        attempts.push(d.deliveryCount);
        return d.deliveryCount < 3 ? Promise.reject(new Error('transient')) : Promise.resolve();
      },
      logger,
    );
    await new JetStreamPublisher(nc).publish(event, job());
    await waitFor(() => attempts.length === 3);
    await consumer.stop();
    expect(attempts).toEqual([1, 2, 3]);
    const ci = await (await jetstreamManager(nc)).consumers.info(event.stream.name, 'w');
    expect(ci.num_ack_pending).toBe(0);
  });

  it('dead-letters a message that fails validation instead of retrying it', async () => {
    const { event } = await freshStream();
    const dead: DeadLetter[] = [];
    let handled = 0;
    const consumer = await consumeEvents(
      nc,
      event,
      { durable: 'w', onDeadLetter: (d) => void dead.push(d) },
      () => {
        handled += 1;
        return Promise.resolve();
      },
      logger,
    );
    const bad = toBinary(SyncJobSchema, create(SyncJobSchema, { jobId: randomUUID(), connectionId: 'not-a-uuid' }));
    nc.publish(event.subject, bad);
    nc.publish(event.subject, new TextEncoder().encode('{not protobuf'));
    await waitFor(() => dead.length === 2);
    await consumer.stop();
    expect(handled).toBe(0);
    expect(dead.map((d) => d.code).sort()).toEqual(['malformed_request', 'validation_failed']);
    expect(dead[0]?.data.length).toBeGreaterThan(0);
  });

  it('dead-letters after the last allowed delivery', async () => {
    const { event } = await freshStream();
    const dead: DeadLetter[] = [];
    let attempts = 0;
    const consumer = await consumeEvents(
      nc,
      event,
      { durable: 'w', maxDeliver: 2, retryBaseMs: 5, onDeadLetter: (d) => void dead.push(d) },
      () => {
        attempts += 1;
        return Promise.reject(new Error('always'));
      },
      logger,
    );
    await new JetStreamPublisher(nc).publish(event, job());
    await waitFor(() => dead.length === 1);
    await consumer.stop();
    expect(attempts).toBe(2);
    expect(dead[0]?.reason).toBe('max_deliveries');
  });

  it('keeps a message whose dead-lettering failed and dead-letters it on a later delivery', async () => {
    const { event } = await freshStream();
    const dead: DeadLetter[] = [];
    let refusals = 1;
    const consumer = await consumeEvents(
      nc,
      event,
      {
        durable: 'w',
        maxDeliver: 1,
        retryBaseMs: 10,
        onDeadLetter: (d) => {
          if (refusals-- > 0) throw new Error('dead-letter store down');
          dead.push(d);
        },
      },
      () => Promise.reject(new Error('always')),
      logger,
    );
    await new JetStreamPublisher(nc).publish(event, job());
    await waitFor(() => dead.length === 1);
    await consumer.stop();
    expect(dead[0]?.reason).toBe('max_deliveries');
  });

  it('keeps what it cannot process in the DEAD_LETTERS stream, verbatim, with the reason', async () => {
    const { event } = await freshStream();
    await ensureStreams(nc, [streams.deadLetters], logger);
    const consumer = await consumeEvents(nc, event, { durable: 'w' }, () => Promise.resolve(), logger);
    const bad = new TextEncoder().encode('{not protobuf');
    nc.publish(event.subject, bad);
    const jsm = await jetstreamManager(nc);
    let stored: Awaited<ReturnType<typeof jsm.streams.getMessage>> | null = null;
    const until = Date.now() + 5_000;
    while (!stored && Date.now() < until) {
      stored = await jsm.streams
        .getMessage(streams.deadLetters.name, { last_by_subj: deadLetterSubject(event.stream) })
        .catch(() => null);
      if (!stored) await new Promise((r) => setTimeout(r, 20));
    }
    await consumer.stop();
    expect(stored).not.toBeNull();
    expect(new TextDecoder().decode(stored!.data)).toBe('{not protobuf');
    expect(stored!.header.get('cg-dead-code')).toBe('malformed_request');
    expect(stored!.header.get('cg-origin-stream')).toBe(event.stream.name);
  });

  it('hands a message held by a worker that died to another worker', async () => {
    const { event } = await freshStream();
    const doomed = await connect({ servers: NATS_URL });
    let startedOnDoomed = false;
    await consumeEvents(
      doomed,
      event,
      { durable: 'w', ackWaitMs: 1_000 },
      async () => {
        startedOnDoomed = true;
        await new Promise(() => undefined); // never finishes: the worker dies mid-job
      },
      logger,
    );
    await new JetStreamPublisher(nc).publish(event, job());
    await waitFor(() => startedOnDoomed);
    await doomed.close(); // killed: no ack, no nak
    const done: number[] = [];
    const survivor = await consumeEvents(
      nc,
      event,
      { durable: 'w', ackWaitMs: 1_000 },
      (_m, d) => {
        done.push(d.deliveryCount);
        return Promise.resolve();
      },
      logger,
    );
    await waitFor(() => done.length === 1);
    await survivor.stop();
    expect(done).toEqual([2]);
  });
});
