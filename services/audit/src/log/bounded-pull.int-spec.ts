import 'reflect-metadata';

import { randomUUID } from 'node:crypto';

import { type TestSchema } from '@context-gateway/database/testing';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { AUDIT_BATCH_HEADER, consumers, events, MAX_AUDIT_BATCH_EVENTS, streams } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TestingModule } from '@nestjs/testing';
import pg from 'pg';

import { type Env } from '../env.js';
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
