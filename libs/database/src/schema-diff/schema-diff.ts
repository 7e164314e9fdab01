import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

import pg from 'pg';

import { applyMigrations } from '../migrations/apply-migrations.js';
import { quoteIdent } from '../schema-name.js';
import { withSchemaEngine } from './schema-engine.js';

const NO_FILTERS = { externalTables: [], externalEnums: [] };

export interface DiffOptions {
  /** A database the diff may use as scratch space (it creates and drops one schema there). */
  url: string;
  /** The service's prisma/schema.prisma. */
  schemaPath: string;
  /** The service's prisma/migrations. */
  migrationsDir: string;
}

/**
 * The SQL that would take a database migrated with `migrationsDir` to what
 * `schemaPath` describes; '' when they already agree. The migrations are applied to a
 * throw-away schema (by the same runner services use), which the engine then compares
 * with the Prisma schema — the role Prisma's shadow database plays in `migrate dev`.
 */
export async function diffMigrationsToSchema(options: DiffOptions): Promise<string> {
  const scratch = `_schema_diff_${randomBytes(6).toString('hex')}`;
  try {
    await applyMigrations({ url: options.url, schema: scratch, migrationsDir: options.migrationsDir });
    return await diffDatabaseToSchema({ url: options.url, schema: scratch, schemaPath: options.schemaPath });
  } finally {
    await dropSchema(options.url, scratch);
  }
}

/** The SQL that would take the live `schema` to what `schemaPath` describes; '' when in sync. */
async function diffDatabaseToSchema(options: { url: string; schema: string; schemaPath: string }): Promise<string> {
  const file = { path: basename(options.schemaPath), content: await readFile(options.schemaPath, 'utf8') };
  const result = await withSchemaEngine(options.url, options.schema, file, (engine) =>
    engine.diff({
      from: { tag: 'schemaDatasource', files: [file], configDir: '.' },
      to: { tag: 'schemaDatamodel', files: [file] },
      script: true,
      // 2 when there is a difference, 0 when none: steadier than parsing the script.
      exitCode: true,
      filters: NO_FILTERS,
    }),
  );
  if (result.exitCode === 0) return '';
  return withoutCreateSchema(result.stdout ?? '', options.schema);
}

/**
 * Migrations are written unqualified and land in whatever schema they are applied to,
 * so a `CREATE SCHEMA` naming the scratch schema must never reach a committed file.
 */
function withoutCreateSchema(sql: string, schema: string): string {
  return sql.replace(
    new RegExp(`(-- CreateSchema\\n)?CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)};\\n*`, 'g'),
    '',
  );
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
