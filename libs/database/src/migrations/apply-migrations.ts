// Why our own runner: Prisma's `migrate deploy` needs its native schema engine, which
// cannot be downloaded on these machines, and the general-purpose runners (postgrator,
// node-pg-migrate, graphile-migrate) each keep their own history table. This one keeps
// Prisma's `_prisma_migrations` exactly as Prisma does (same columns, checksums, states
// and advisory lock), so a database it migrated can still be handed to `prisma migrate
// deploy`/`status`/`resolve` wherever the engine exists, and vice versa.
import { randomUUID } from 'node:crypto';

import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import pg from 'pg';

import { isLockConflict } from '../lock-conflict.js';
import { assertSchemaName, quoteIdent } from '../schema-name.js';
import { matchesChecksum, type MigrationFile, readMigrationFiles } from './migration-files.js';
import {
  isApplied,
  isFailed,
  type MigrationRow,
  PRISMA_MIGRATION_LOCK_KEY,
  PRISMA_MIGRATIONS_DDL,
  readMigrationRows,
} from './prisma-migrations-table.js';

/** The slice of a pino logger the runner uses. */
interface MigrationLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export type ApplyMigrationsOptions = ({ pool: pg.Pool; url?: never } | { url: string; pool?: never }) & {
  /** The schema to migrate; created when missing. Migrations are written unqualified and land here. */
  schema: string;
  /** A Prisma migrations folder: `<timestamp>_<name>/migration.sql` per migration. */
  migrationsDir: string;
  logger?: MigrationLogger;
  /** How long to wait for another process's migration run to finish. Default 60 s. */
  lockTimeoutMs?: number;
  /** Decides when the wait for the lock has run out. */
  clock?: Clock;
  /**
   * Run the migrations as this role (`SET ROLE`), so the schema and everything they create
   * belong to it: the migration owner role of libs/database roles, never a service's login.
   */
  role?: string;
  /**
   * A migration that loses a table lock conflict (a deadlock, or its own lock_timeout) is
   * rolled back and tried again, up to `attempts` times in all, `backoffMs` before the
   * second and twice as long before each next. Default 5 and 500 ms (7.5 s of waiting).
   */
  lockConflictRetry?: LockConflictRetry;
};

interface AppliedMigration {
  name: string;
  checksum: string;
  durationMs: number;
}

export interface ApplyMigrationsResult {
  schema: string;
  /** What this call applied, in order; empty when the schema was already up to date. */
  applied: AppliedMigration[];
  /** Migrations found already applied (by an earlier start or another replica). */
  alreadyApplied: string[];
}

const LOCK_POLL_MS = 100;

interface LockConflictRetry {
  attempts: number;
  backoffMs: number;
}

const LOCK_CONFLICT_RETRY: LockConflictRetry = { attempts: 5, backoffMs: 500 };

/**
 * Brings `schema` up to date with `migrationsDir`. Several replicas may call this at
 * once: the advisory lock lets one apply while the rest wait, then find nothing to do.
 * Each migration runs in its own transaction together with its history row update, so
 * it is recorded as applied exactly when its changes are committed.
 *
 * Refuses (AppError) when an applied migration's file was edited
 * (`migration_checksum_mismatch`), when a migration failed now or on an earlier run
 * (`migration_failed`), or when the lock is not free in time (`migration_lock_timeout`:
 * the runner's lock, or a migration's table locks on every attempt, see lockConflictRetry).
 */
export async function applyMigrations(options: ApplyMigrationsOptions): Promise<ApplyMigrationsResult> {
  const schema = assertSchemaName(options.schema);
  const files = await readMigrationDir(options.migrationsDir);
  const { client, done } = await connect(options);
  try {
    // A migration may legitimately run longer than a request-path statement timeout.
    await client.query('SET statement_timeout = 0');
    await acquireLock(client, options.lockTimeoutMs ?? 60_000, options.clock ?? systemClock);
    try {
      if (options.role) await client.query(`SET ROLE ${quoteIdent(options.role)}`);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
      await client.query(`SET search_path TO ${quoteIdent(schema)}`);
      await client.query(PRISMA_MIGRATIONS_DDL);
      return await applyPending(
        client,
        schema,
        files,
        options.logger,
        options.lockConflictRetry ?? LOCK_CONFLICT_RETRY,
      );
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATION_LOCK_KEY]);
    }
  } finally {
    await done();
  }
}

export interface VerifyMigrationsOptions {
  pool: pg.Pool;
  schema: string;
  migrationsDir: string;
  logger?: MigrationLogger;
}

/**
 * For a service whose login may not migrate (a role per service, libs/database roles):
 * checks that `schema` already holds every migration of `migrationsDir`, unedited and none
 * failed, and changes nothing. Refuses with `migration_pending` (naming what is missing and
 * how to apply it), `migration_checksum_mismatch` or `migration_failed`.
 */
export async function verifyMigrations(options: VerifyMigrationsOptions): Promise<{ alreadyApplied: string[] }> {
  const schema = assertSchemaName(options.schema);
  const files = await readMigrationDir(options.migrationsDir);
  const client = await options.pool.connect();
  try {
    const table = await client.query<{ found: string | null }>(`SELECT to_regclass($1) AS found`, [
      `${quoteIdent(schema)}."_prisma_migrations"`,
    ]);
    const rows = table.rows[0]?.found ? await readMigrationRows(client) : [];
    refuseFailed(rows, schema);
    const applied = new Map(rows.filter(isApplied).map((row) => [row.migration_name, row]));
    refuseEdited(files, applied, schema);
    const pending = files.filter((file) => !applied.has(file.name)).map((file) => file.name);
    if (pending.length > 0) {
      throw new AppError(
        'migration_pending',
        `schema ${schema}: migration ${pending.join(', ')} not applied, and this service's database role may not ` +
          `migrate. Run \`pnpm db:migrate && pnpm db:roles\` (or the deployment's db-setup job) as the migration owner first.`,
      );
    }
    warnUnknown(rows, files, schema, options.logger);
    return { alreadyApplied: files.map((file) => file.name) };
  } finally {
    client.release();
  }
}

async function readMigrationDir(migrationsDir: string): Promise<MigrationFile[]> {
  try {
    return await readMigrationFiles(migrationsDir);
  } catch (error) {
    // A wrong path must not look like "nothing to migrate".
    throw new AppError(
      'migration_failed',
      `cannot read migrations from ${migrationsDir}: ${(error as Error).message}`,
      [],
      {
        cause: error,
      },
    );
  }
}

async function connect(options: ApplyMigrationsOptions): Promise<{ client: pg.ClientBase; done: () => Promise<void> }> {
  if (options.pool) {
    const client = await options.pool.connect();
    // Destroy rather than return it: its session settings (search_path, timeouts) were changed.
    return {
      client,
      done: () => {
        client.release(true);
        return Promise.resolve();
      },
    };
  }
  const client = new pg.Client({ connectionString: options.url, application_name: 'migrations' });
  await client.connect();
  return { client, done: () => client.end() };
}

async function acquireLock(client: pg.ClientBase, timeoutMs: number, clock: Clock): Promise<void> {
  // Polling pg_try_advisory_lock keeps the wait bounded without relying on
  // lock_timeout, and never leaves a blocked statement behind on the server.
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      PRISMA_MIGRATION_LOCK_KEY,
    ]);
    if (rows[0]?.locked) return;
    if (clock.now() >= deadline) {
      throw new AppError(
        'migration_lock_timeout',
        `another process held the migration lock for more than ${timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

async function applyPending(
  client: pg.ClientBase,
  schema: string,
  files: MigrationFile[],
  logger: MigrationLogger | undefined,
  retry: LockConflictRetry,
): Promise<ApplyMigrationsResult> {
  const rows = await readMigrationRows(client);
  refuseFailed(rows, schema);
  const applied = new Map(rows.filter(isApplied).map((row) => [row.migration_name, row]));
  refuseEdited(files, applied, schema);

  warnUnknown(rows, files, schema, logger);

  const result: ApplyMigrationsResult = {
    schema,
    applied: [],
    alreadyApplied: files.filter((f) => applied.has(f.name)).map((f) => f.name),
  };
  for (const file of files) {
    if (applied.has(file.name)) continue;
    const started = Date.now();
    await applyOne(client, schema, file, logger, retry);
    const durationMs = Date.now() - started;
    logger?.info({ schema, migration: file.name, durationMs }, 'migration applied');
    result.applied.push({ name: file.name, checksum: file.checksum, durationMs });
  }
  return result;
}

function warnUnknown(
  rows: MigrationRow[],
  files: MigrationFile[],
  schema: string,
  logger: MigrationLogger | undefined,
): void {
  const known = new Set(files.map((file) => file.name));
  const unknown = rows.filter((row) => isApplied(row) && !known.has(row.migration_name)).map((r) => r.migration_name);
  if (unknown.length > 0) {
    // An older build starting against a newer database: not fatal, but worth seeing.
    logger?.warn({ schema, migrations: unknown }, 'database has migrations this build does not know');
  }
}

function refuseFailed(rows: MigrationRow[], schema: string): void {
  const failed = rows.filter(isFailed);
  if (failed.length === 0) return;
  const names = failed.map((row) => row.migration_name).join(', ');
  throw new AppError(
    'migration_failed',
    `schema ${schema}: migration ${names} failed on an earlier run (see _prisma_migrations.logs). ` +
      `Repair the database, then mark it rolled back (prisma migrate resolve --rolled-back <name>, or ` +
      `UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '<name>' AND finished_at IS NULL) and start again.`,
  );
}

function refuseEdited(files: MigrationFile[], applied: Map<string, MigrationRow>, schema: string): void {
  const edited = files.filter((file) => {
    const row = applied.get(file.name);
    return row !== undefined && !matchesChecksum(file.sql, row.checksum);
  });
  if (edited.length === 0) return;
  throw new AppError(
    'migration_checksum_mismatch',
    `schema ${schema}: migration ${edited.map((f) => f.name).join(', ')} was edited after it was applied. ` +
      `Restore the applied file and put the change in a new migration.`,
  );
}

async function applyOne(
  client: pg.ClientBase,
  schema: string,
  file: MigrationFile,
  logger: MigrationLogger | undefined,
  retry: LockConflictRetry,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const id = randomUUID();
    // The history row commits with the migration's own changes: a process killed halfway
    // leaves neither, and the next start simply applies it again.
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count)
         VALUES ($1, $2, $3, clock_timestamp(), 0)`,
        [id, file.checksum, file.name],
      );
      // No parameters: the simple query protocol runs a multi-statement script as is.
      await client.query(file.sql);
      await client.query(
        `UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1`,
        [id],
      );
      await client.query('COMMIT');
      return;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      // Lost to a transaction in flight (a deadlock, or its own `SET LOCAL lock_timeout`).
      if (isLockConflict(error)) {
        const { code } = error as { code: string };
        // Not the migration's fault but the moment's (a sync write in flight): recorded as
        // failed, it would block every later start until an operator stepped in.
        if (attempt < retry.attempts) {
          const waitMs = retry.backoffMs * 2 ** (attempt - 1);
          logger?.warn(
            { schema, migration: file.name, code, attempt, waitMs },
            'migration lost a table lock conflict, rolled back; trying again',
          );
          await new Promise((resolve) => setTimeout(resolve, waitMs));
          continue;
        }
        throw new AppError(
          'migration_lock_timeout',
          `schema ${schema}: migration ${file.name} lost a table lock conflict on each of ${attempt} attempts ` +
            `(last: ${code} ${(error as Error).message}). Nothing was applied or recorded as failed: start again, ` +
            `or find the transactions holding its tables (pg_locks) first.`,
          [],
          { cause: error },
        );
      }
      // A failure is recorded the way Prisma records one (started, never finished, logs
      // set), so this start and every later one refuse until an operator resolves it.
      await client.query(
        `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, logs, applied_steps_count)
         VALUES ($1, $2, $3, clock_timestamp(), $4, 0)`,
        [id, file.checksum, file.name, describeFailure(error)],
      );
      throw new AppError(
        'migration_failed',
        `schema ${schema}: migration ${file.name} failed: ${(error as Error).message}`,
        [],
        {
          cause: error,
        },
      );
    }
  }
}

/** The `logs` text Prisma writes for a failed migration: the database error and its code. */
function describeFailure(error: unknown): string {
  const { code, message, position } = error as { code?: string; message?: string; position?: string };
  return [
    `Migration failed to apply.`,
    code ? `Database error code: ${code}` : undefined,
    `Database error:\n${message ?? String(error)}`,
    position ? `Position: ${position}` : undefined,
  ]
    .filter(Boolean)
    .join('\n\n');
}
