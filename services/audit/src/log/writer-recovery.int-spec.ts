import 'reflect-metadata';

import { type TestSchema } from '@context-gateway/database/testing';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
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

const ORG = '0b0e6a3c-3333-4a7b-9c55-0d6f3f9c2a11';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Issue #17's fault suite: after a Postgres restart the writer stopped appending. A restart
 * terminates every connection the service holds; here the writer's are terminated the same
 * way (pg_terminate_backend), idle and mid-load, and the events published around it must all
 * end up in the log, once.
 */
describe('the audit log writer survives its database connection dying', () => {
  const logger = testLogger();
  let bed: LogTestBed;
  let db: TestSchema;
  let nc: NatsConnection;
  let env: Env;
  let admin: pg.Client;
  let instance: TestingModule | undefined;
  let n = 0;

  async function count(): Promise<number> {
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${db.schema}.audit_entries`);
    return rows[0].n as number;
  }

  async function waitForCount(expected: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await count()) < expected) {
      if (Date.now() > deadline) throw new Error(`only ${await count()} of ${expected} entries appended`);
      await sleep(100);
    }
  }

  async function publish(k: number): Promise<void> {
    const publisher = new JetStreamPublisher(nc);
    const batch = Array.from({ length: k }, () => auditTestEvent((n += 1), ORG));
    await Promise.all(batch.map((e) => publisher.publish(events.auditRecorded, e)));
  }

  /** What a Postgres restart does to every open connection of the service. */
  async function terminateServiceConnections(): Promise<number> {
    const { rows } = await admin.query(
      `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
      [`test:${db.schema}`],
    );
    return rows.length;
  }

  beforeAll(async () => {
    bed = await startLogTestBed({ prefix: 'audit_recovery', logger, env: { AUDIT_BATCH_SIZE: '100' } });
    ({ db, nc, env } = bed);
    admin = new pg.Client({ connectionString: db.url, application_name: 'audit-recovery-admin' });
    await admin.connect();
    instance = await startAuditInstance({ pool: db.pool, nc, env, logger, imports: [LogModule] });
  }, 30_000);

  afterAll(async () => {
    await instance?.close().catch(() => undefined);
    await admin?.end();
    await bed?.stop();
  });

  it('idle when the connection dies: the backlog published afterwards drains', async () => {
    await publish(200);
    await waitForCount(200, 20_000);
    await sleep(500);
    expect(await terminateServiceConnections()).toBeGreaterThan(0);
    await sleep(300);
    await publish(300);
    await waitForCount(500, 20_000);
  }, 40_000);

  it('busy when the connection dies: nothing lost, nothing twice', async () => {
    const load = (async () => {
      for (let i = 0; i < 20; i += 1) {
        await publish(50);
        await sleep(50);
      }
    })();
    await sleep(200);
    await terminateServiceConnections();
    await sleep(300);
    await terminateServiceConnections();
    await load;
    await waitForCount(1500, 30_000);
    await sleep(500);
    expect(await count()).toBe(1500);
    expect(instance!.get(LogWriterService).stats.active).toBe(true);
    // The sessions before and after the breaks continue one log, under the same key.
    const key = await instance!.get(SigningKeyHolder).get();
    expect(await verifyStoredLog(db.pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN)).toMatchObject({
      ok: true,
      treeSize: 1500,
    });
  }, 60_000);
});
