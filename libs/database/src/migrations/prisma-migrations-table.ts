import type pg from 'pg';

/**
 * Prisma's migration history table, column for column as its schema engine creates it
 * for Postgres, so `prisma migrate deploy`/`status`/`resolve` read what we write.
 */
export const PRISMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/**
 * Prisma's advisory lock key for migrations (its schema engine takes the same one), so
 * our runners and a `prisma migrate deploy` never apply at the same time either.
 */
export const PRISMA_MIGRATION_LOCK_KEY = 72707369;

export interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

/** Prisma's states: a row is applied, failed (started, never finished) or rolled back (ignored). */
export const isApplied = (row: MigrationRow): boolean => row.finished_at !== null && row.rolled_back_at === null;
export const isFailed = (row: MigrationRow): boolean => row.finished_at === null && row.rolled_back_at === null;

export async function readMigrationRows(client: pg.ClientBase): Promise<MigrationRow[]> {
  const { rows } = await client.query<MigrationRow>(
    `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count
       FROM "_prisma_migrations" ORDER BY started_at, migration_name`,
  );
  return rows;
}
