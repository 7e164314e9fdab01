import { randomBytes } from 'node:crypto';

import type pg from 'pg';

import { applyMigrations, type ApplyMigrationsResult } from '../migrations/apply-migrations.js';
import { createPool } from '../pool.js';
import { quoteIdent } from '../schema-name.js';

/** The database integration tests use (ENVIRONMENT.md: trust auth, database `test`). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  url: string;
  /** A fresh, unique schema name; its pool's search_path. */
  schema: string;
  pool: pg.Pool;
  /** What applying `migrationsDir` did (empty when none was given). */
  migrated: ApplyMigrationsResult;
  /** Ends the pool and drops the schema with everything in it. */
  drop(): Promise<void>;
}

/**
 * A throw-away schema for one test file, optionally migrated with a service's
 * migrations, so test files can run in parallel against the shared `test` database.
 */
export async function createTestSchema(options: {
  prefix: string;
  migrationsDir?: string;
  url?: string;
}): Promise<TestSchema> {
  const url = options.url ?? TEST_DATABASE_URL;
  const schema = `${options.prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(5).toString('hex')}`;
  const pool = createPool({ url, schema, applicationName: `test:${schema}`, max: 5 });
  const migrated = options.migrationsDir
    ? await applyMigrations({ pool, schema, migrationsDir: options.migrationsDir })
    : { schema, applied: [], alreadyApplied: [] };
  if (!options.migrationsDir) await pool.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
  return {
    url,
    schema,
    pool,
    migrated,
    async drop() {
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      } finally {
        await pool.end();
      }
    },
  };
}
