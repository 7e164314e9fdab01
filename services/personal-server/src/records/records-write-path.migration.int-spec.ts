import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { applyMigrations } from '@context-gateway/database';
import { createTestSchema, type TestSchema, untilLockWaited } from '@context-gateway/database/testing';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { PoolClient } from 'pg';

// Migration 20261207074032_records_write_path applied while a sync write is in flight, as a
// rolling deploy does: it must neither park the read path behind its ACCESS EXCLUSIVE request
// nor leave a failed migration behind that blocks every later start.
const migrationsDir = new URL('../../prisma/migrations', import.meta.url).pathname;
const WRITE_PATH = '20261207074032_records_write_path';

let before: string;
let schema: TestSchema;
const sessions: PoolClient[] = [];

async function session(): Promise<PoolClient> {
  const client = await schema.pool.connect();
  sessions.push(client);
  return client;
}

beforeAll(async () => {
  // The schema as the release before this migration left it.
  before = await mkdtemp(join(tmpdir(), 'ps-migrations-'));
  for (const name of await readdir(migrationsDir))
    if (name < WRITE_PATH) await cp(join(migrationsDir, name), join(before, name), { recursive: true });
  schema = await createTestSchema({ prefix: 'ps_write_path', migrationsDir: before });
});

afterAll(async () => {
  for (const client of sessions) client.release(true);
  await schema?.drop();
  await rm(before, { recursive: true, force: true });
});

it('applies with a sync write in flight: reads wait at most its lock_timeout, nothing is recorded failed', async () => {
  expect(schema.migrated.applied.map((m) => m.name)).not.toContain(WRITE_PATH);
  // A first sync write, not committed yet: a personal server, its connection and a record.
  const writer = await session();
  const [ps, connection] = [randomUUID(), randomUUID()];
  await writer.query('BEGIN');
  await writer.query('INSERT INTO personal_servers (id, user_id, shard) VALUES ($1, $2, 0)', [ps, randomUUID()]);
  await writer.query(
    `INSERT INTO connections (id, personal_server_id, user_id, integration, data_key_id) VALUES ($1, $2, $3, 'spotify', $4)`,
    [connection, ps, randomUUID(), randomUUID()],
  );
  await writer.query(
    `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, source_updated_at, updated_at, version)
     VALUES ($1, $2, $3, 'media.playlist', 'p1', '\\x00', now(), now(), 1)`,
    [randomUUID(), ps, connection],
  );

  const warnings: Record<string, unknown>[] = [];
  const logger = { info: () => undefined, warn: (fields: Record<string, unknown>) => warnings.push(fields) };
  const migrating = applyMigrations({ pool: schema.pool, schema: schema.schema, migrationsDir, logger });
  const reader = await session();
  await untilLockWaited(reader, 'records');
  // Queued behind the migration's request; answered once the migration gives up on its
  // lock, while the write is still in flight (without the lock_timeout, only after it).
  const { rows } = await reader.query<{ count: string }>('SELECT count(*) FROM records');
  expect(rows).toEqual([{ count: '0' }]);

  await writer.query('COMMIT');
  expect((await migrating).applied.map((m) => m.name)).toEqual([WRITE_PATH]);
  expect(warnings[0]).toMatchObject({ migration: WRITE_PATH, code: '55P03', attempt: 1 });
  const history = await reader.query<{ migration_name: string; finished: boolean }>(
    `SELECT migration_name, finished_at IS NOT NULL AS finished FROM _prisma_migrations WHERE migration_name = $1`,
    [WRITE_PATH],
  );
  expect(history.rows).toEqual([{ migration_name: WRITE_PATH, finished: true }]);
  // Applied in full: the key is gone, and a deleted connection takes its records along.
  await reader.query('DELETE FROM connections WHERE id = $1', [connection]);
  expect((await reader.query('SELECT 1 FROM records WHERE connection_id = $1', [connection])).rowCount).toBe(0);
}, 30_000);
