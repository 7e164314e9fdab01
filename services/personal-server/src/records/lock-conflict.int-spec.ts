import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createPool } from '@context-gateway/database';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { RecordInputSchema, WriteRecordsRequestSchema } from '@context-gateway/proto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestApplicationContext } from '@nestjs/common';
import type pg from 'pg';

import { startShardContext } from '../testing/shard-context.js';
import { RecordsModule } from './records.module.js';
import { RecordsService } from './records.service.js';

// A sync write that loses a lock conflict — here its lock_timeout, as a migration holding
// `records` causes — fails as the retryable service_unavailable, not as internal.
const migrationsDir = new URL('../../prisma/migrations', import.meta.url).pathname;
let schema: TestSchema;
let pool: pg.Pool;
let keyDir: string;
let natsServer: PrivateNats;
let nc: NatsConnection;
let shard: INestApplicationContext;

beforeAll(async () => {
  schema = await createTestSchema({ prefix: 'ps_lock', migrationsDir });
  keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-keys-'));
  natsServer = await startPrivateNats();
  nc = await connect({ servers: natsServer.url });
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', '-c lock_timeout=200ms');
  pool = createPool({ url: url.toString(), schema: schema.schema, applicationName: 'lock-conflict.int-spec' });
  shard = await startShardContext(
    { ...schema, pool },
    nc,
    { SHARD_ID: '0', SHARD_COUNT: '1', MASTER_KEY_FILE: join(keyDir, 'master.key') },
    [RecordsModule],
  );
});

afterAll(async () => {
  await shard?.close();
  await pool?.end();
  await nc?.drain();
  await natsServer?.stop();
  await schema?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

it('a write that runs out of its lock_timeout behind a migration fails as service_unavailable', async () => {
  const [userId, connectionId] = [randomUUID(), randomUUID()];
  const write = () =>
    shard.get(RecordsService).write(
      create(WriteRecordsRequestSchema, {
        userId,
        connectionId,
        integration: 'spotify',
        records: [
          create(RecordInputSchema, {
            type: 'media.playlist',
            externalId: 'p1',
            dataJson: Buffer.from(JSON.stringify({ source: 'spotify', id: 'p1', name: 'List', public: true })),
          }),
        ],
        syncedAt: timestampFromDate(new Date()),
      }),
    );
  const migration = await schema.pool.connect();
  try {
    await migration.query('BEGIN');
    await migration.query('LOCK TABLE records IN ACCESS EXCLUSIVE MODE');
    const error = await write().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'service_unavailable', cause: { code: '55P03' } });
  } finally {
    await migration.query('ROLLBACK');
    migration.release();
  }
  // Tried again once the lock is free, the same write goes through.
  expect(await write()).toMatchObject({ written: 1 });
}, 30_000);
