import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { ensureDatabase } from './ensure-database.js';
import { createPool, pingDatabase } from './pool.js';
import { createPrismaAdapter } from './prisma-adapter.js';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from './testing/test-schema.js';

let testSchema: TestSchema;

beforeAll(async () => {
  testSchema = await createTestSchema({ prefix: 't_pool' });
  await testSchema.pool.query('CREATE TABLE "things" ("id" INTEGER PRIMARY KEY)');
  await testSchema.pool.query('INSERT INTO "things" VALUES (7)');
});

afterAll(async () => {
  await testSchema.drop();
});

describe('createPool', () => {
  it('puts every connection in the service schema, named after the service', async () => {
    const { rows } = await testSchema.pool.query(
      `SELECT current_schema() AS schema, current_setting('application_name') AS app, id FROM things`,
    );
    expect(rows).toEqual([{ schema: testSchema.schema, app: `test:${testSchema.schema}`, id: 7 }]);
  });

  it('sets UTC and ISO dates on every connection, whatever the server defaults to', async () => {
    const { rows } = await testSchema.pool.query<{ name: string; setting: string; source: string }>(
      `SELECT name, setting, source FROM pg_settings WHERE name IN ('TimeZone', 'DateStyle') ORDER BY name`,
    );
    // `client`: from the startup packet, not the server's or the database's configuration.
    expect(rows).toEqual([
      { name: 'DateStyle', setting: expect.stringMatching(/^ISO,/) as unknown, source: 'client' },
      { name: 'TimeZone', setting: 'UTC', source: 'client' },
    ]);
    const { rows: text } = await testSchema.pool.query<{ at: string }>(
      `SELECT (timestamptz '2026-12-07 09:30:00.12+01')::text AS at`,
    );
    expect(text).toEqual([{ at: '2026-12-07 08:30:00.12+00' }]);
  });

  it('cancels a statement that runs past the statement timeout', async () => {
    const pool = createPool({
      url: TEST_DATABASE_URL,
      schema: testSchema.schema,
      applicationName: 'pool.int-spec',
      statementTimeoutMs: 100,
    });
    try {
      await expect(pool.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ code: '57014' });
    } finally {
      await pool.end();
    }
  });

  it("keeps the URL's own options next to ours, which win", async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set('options', '-c lock_timeout=1s -c statement_timeout=99');
    const pool = createPool({ url: url.toString(), schema: testSchema.schema, applicationName: 'pool.int-spec' });
    try {
      const { rows } = await pool.query<{ name: string; setting: string }>(
        `SELECT name, setting FROM pg_settings
          WHERE name IN ('lock_timeout', 'statement_timeout', 'TimeZone', 'search_path') ORDER BY lower(name)`,
      );
      expect(rows).toEqual([
        { name: 'lock_timeout', setting: '1000' },
        { name: 'search_path', setting: testSchema.schema },
        { name: 'statement_timeout', setting: '15000' },
        { name: 'TimeZone', setting: 'UTC' },
      ]);
    } finally {
      await pool.end();
    }
  });

  it('rejects a schema name that would need quoting', () => {
    expect(() => createPool({ url: TEST_DATABASE_URL, schema: 'x; DROP TABLE y', applicationName: 't' })).toThrow(
      /not a valid schema name/,
    );
  });
});

describe('pingDatabase', () => {
  it('is true while the database answers', async () => {
    expect(await pingDatabase(testSchema.pool, 1_000)).toBe(true);
  });

  it('is false, not an exception, when nothing listens', async () => {
    const dead = createPool({
      url: 'postgres://postgres@127.0.0.1:1/test',
      schema: 'x',
      applicationName: 'pool.int-spec',
    });
    try {
      expect(await pingDatabase(dead, 1_000)).toBe(false);
    } finally {
      await dead.end();
    }
  });

  it('is false when the answer takes longer than the timeout', async () => {
    const busy = createPool({
      url: TEST_DATABASE_URL,
      schema: testSchema.schema,
      applicationName: 'pool.int-spec',
      max: 1,
    });
    const holder = await busy.connect();
    try {
      const started = Date.now();
      expect(await pingDatabase(busy, 200)).toBe(false);
      // Far below the pool's 5 s wait for a free connection: the probe's own bound held.
      // (Generous on purpose: a loaded 2-core machine must not make this flaky.)
      expect(Date.now() - started).toBeLessThan(4_000);
    } finally {
      holder.release();
      await busy.end();
    }
  });
});

describe('createPrismaAdapter', () => {
  it('runs Prisma’s queries on the given pool, in its schema', async () => {
    const adapter = await createPrismaAdapter(testSchema.pool, testSchema.schema).connect();
    try {
      const result = await adapter.queryRaw({
        sql: `SELECT current_setting('application_name') AS app, id FROM things`,
        args: [],
        argTypes: [],
      });
      expect(result.rows).toEqual([[`test:${testSchema.schema}`, 7]]);
      expect(adapter.getConnectionInfo().schemaName).toBe(testSchema.schema);
    } finally {
      await adapter.dispose();
    }
    // The shared pool belongs to the service and outlives the adapter.
    expect(await pingDatabase(testSchema.pool, 1_000)).toBe(true);
  });

  it('builds and owns its own pool from options', async () => {
    const adapter = await createPrismaAdapter({
      url: TEST_DATABASE_URL,
      schema: testSchema.schema,
      applicationName: 'own-pool',
    }).connect();
    try {
      const result = await adapter.queryRaw({
        sql: `SELECT current_setting('application_name') AS app, current_schema() AS s`,
        args: [],
        argTypes: [],
      });
      expect(result.rows).toEqual([['own-pool', testSchema.schema]]);
    } finally {
      await adapter.dispose();
    }
  });
});

describe('ensureDatabase', () => {
  it('creates a missing database once and reports whether it did', async () => {
    const name = `t_ensure_${Math.random().toString(36).slice(2, 10)}`;
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const [first, second] = await Promise.all([ensureDatabase(url.toString()), ensureDatabase(url.toString())]);
      expect([first, second].sort()).toEqual([false, true]);
      expect(await ensureDatabase(url.toString())).toBe(false);
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(rowCount).toBe(1);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
      await admin.end();
    }
  });
});
