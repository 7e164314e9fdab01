import { AppError } from '@context-gateway/errors';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { createPool } from './pool.js';
import { createPrismaAdapter } from './prisma-adapter.js';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from './testing/test-schema.js';

// What a handler sees while Postgres restarts, produced for real, must reach the caller as a
// coded 503 (AppError.from → service_unavailable), never a 500 `internal`.

let testSchema: TestSchema;

beforeAll(async () => {
  testSchema = await createTestSchema({ prefix: 't_unavail' });
  await testSchema.pool.query('CREATE TABLE "things" ("id" INTEGER PRIMARY KEY)');
});

afterAll(async () => {
  await testSchema.drop();
});

const codeOf = async (work: Promise<unknown>): Promise<string> => {
  try {
    await work;
  } catch (error) {
    return AppError.from(error).code;
  }
  throw new Error('expected a failure');
};

const deadPool = () =>
  createPool({ url: 'postgres://postgres@127.0.0.1:1/test', schema: 'x', applicationName: 'unavailable.int-spec' });

describe('a database that cannot be reached is a coded 503', () => {
  it('nothing listens (the server is down): pg and the Prisma adapter', async () => {
    const pool = deadPool();
    try {
      expect(await codeOf(pool.query('SELECT 1'))).toBe('service_unavailable');
    } finally {
      await pool.end();
    }
    const adapter = createPrismaAdapter({
      url: 'postgres://postgres@127.0.0.1:1/test',
      schema: 'x',
      applicationName: 'unavailable.int-spec',
    });
    const connection = await adapter.connect();
    try {
      expect(await codeOf(connection.queryRaw({ sql: 'SELECT 1', args: [], argTypes: [] }))).toBe(
        'service_unavailable',
      );
    } finally {
      await connection.dispose();
    }
  });

  it('the server ends the session (a fast shutdown sends 57P01 to every backend)', async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    client.on('error', () => undefined);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const running = client.query('SELECT pg_sleep(5)');
      await new Promise((r) => setTimeout(r, 200));
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      expect(await codeOf(running)).toBe('service_unavailable');
      // The dead client's next query fails without a SQLSTATE: still a 503.
      expect(await codeOf(client.query('SELECT 1'))).toBe('service_unavailable');
    } finally {
      await admin.end();
      await client.end().catch(() => undefined);
    }
  });

  it('a checked-out connection the server ends between statements is reported, not a crash', async () => {
    const errors: Error[] = [];
    const pool = createPool({
      url: TEST_DATABASE_URL,
      schema: testSchema.schema,
      applicationName: 'unavailable.int-spec',
      max: 1,
      onError: (error) => errors.push(error),
    });
    try {
      const tx = await pool.connect();
      await tx.query('BEGIN');
      const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // No statement runs on `tx` now: without a listener this 'error' event ends the process.
      await testSchema.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(errors.map((e) => (e as Error & { code?: string }).code)).toEqual(['57P01']);
      expect(await codeOf(tx.query('COMMIT'))).toBe('service_unavailable');
      tx.release();
      // The pool dropped the dead connection: the next statement gets a fresh one.
      expect((await pool.query<{ ok: number }>('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('every pooled connection is busy past the wait (pool exhausted)', async () => {
    const pool = createPool({
      url: TEST_DATABASE_URL,
      schema: testSchema.schema,
      applicationName: 'unavailable.int-spec',
      max: 1,
      connectionTimeoutMs: 100,
    });
    const held = await pool.connect();
    try {
      expect(await codeOf(pool.query('SELECT 1'))).toBe('service_unavailable');
    } finally {
      held.release();
      await pool.end();
    }
  });

  it('a statement the database refuses stays a server error, not a 503', async () => {
    await testSchema.pool.query('INSERT INTO things VALUES (1)');
    expect(await codeOf(testSchema.pool.query('INSERT INTO things VALUES (1)'))).toBe('internal');
    expect(await codeOf(testSchema.pool.query('SELECT * FROM no_such_table'))).toBe('internal');
  });
});
