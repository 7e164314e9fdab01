import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AppError } from '@context-gateway/errors';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { createPool } from '../pool.js';
import { until, untilLockWaited } from '../testing/lock-waits.js';
import { TEST_DATABASE_URL } from '../testing/test-schema.js';
import { applyMigrations } from './apply-migrations.js';
import { PRISMA_MIGRATION_LOCK_KEY } from './prisma-migrations-table.js';

// Deliberately not idempotent (no IF NOT EXISTS): applying one twice fails loudly.
const INIT = 'CREATE TABLE "widgets" ("id" INTEGER NOT NULL, CONSTRAINT "widgets_pkey" PRIMARY KEY ("id"));\n';
const ADD_NAME = 'ALTER TABLE "widgets" ADD COLUMN "name" TEXT NOT NULL DEFAULT \'\';\n';
const ADD_INDEX = 'CREATE INDEX "widgets_name_idx" ON "widgets"("name");\n';
const GADGETS = 'CREATE TABLE "gadgets" ("id" INTEGER NOT NULL);\n';

let admin: pg.Client;
let dir: string;
let schema: string;
let pools: pg.Pool[] = [];
/** Other sessions a test opened (lock holders); ended after it, whatever happened. */
let clients: pg.Client[] = [];

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function writeMigration(name: string, sql: string): Promise<void> {
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(join(dir, name, 'migration.sql'), sql);
}

function pool(): pg.Pool {
  const created = createPool({ url: TEST_DATABASE_URL, schema, applicationName: 'apply-migrations.int-spec', max: 2 });
  pools.push(created);
  return created;
}

async function rows() {
  const { rows: found } = await admin.query(
    `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count
       FROM "${schema}"."_prisma_migrations" ORDER BY started_at`,
  );
  return found;
}

/** `init` applied, and `add_name` pending, giving up on a lock after `lockTimeout`. */
async function initThenAddName(lockTimeout: string): Promise<void> {
  await writeMigration('20250101000000_init', INIT);
  await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
  await writeMigration('20250102000000_add_name', `SET LOCAL lock_timeout = '${lockTimeout}';\n${ADD_NAME}`);
}

/** A session in a transaction, holding on `table` what a sync write holds until it commits. */
async function writeInFlight(table: string): Promise<pg.Client> {
  const writer = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await writer.connect();
  clients.push(writer);
  await writer.query('BEGIN');
  await writer.query(`LOCK TABLE "${schema}"."${table}" IN ROW EXCLUSIVE MODE`);
  return writer;
}

/** A run with its own retry settings, keeping the runner's warnings. */
function retrying(attempts: number, backoffMs: number) {
  const warnings: Record<string, unknown>[] = [];
  const logger = { info: () => undefined, warn: (fields: Record<string, unknown>) => warnings.push(fields) };
  const migrate = () =>
    applyMigrations({ pool: pool(), schema, migrationsDir: dir, logger, lockConflictRetry: { attempts, backoffMs } });
  return { warnings, migrate };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  return (error as AppError).code;
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
});

afterAll(async () => {
  await admin.end();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'migrations-'));
  await writeFile(join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n');
  schema = `t_apply_${Math.random().toString(36).slice(2, 10)}`;
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.end()));
  clients = [];
  await Promise.all(pools.map((p) => p.end()));
  pools = [];
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await rm(dir, { recursive: true, force: true });
});

describe('applyMigrations', () => {
  it('creates the schema and applies every pending migration in folder-name order', async () => {
    // Written newest first, so directory order on disk is not what makes this pass.
    await writeMigration('20250102000000_add_name', ADD_NAME);
    await writeMigration('20250101000000_init', INIT);

    const result = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });

    expect(result.applied.map((m) => m.name)).toEqual(['20250101000000_init', '20250102000000_add_name']);
    const columns = await admin.query(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'widgets' ORDER BY ordinal_position`,
      [schema],
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id', 'name']);
    expect((await rows()).map((r) => r.migration_name)).toEqual(['20250101000000_init', '20250102000000_add_name']);
  });

  it('applies nothing on a second run, and only the new migration once one is added', async () => {
    await writeMigration('20250101000000_init', INIT);
    await applyMigrations({ pool: pool(), schema, migrationsDir: dir });

    const again = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toEqual(['20250101000000_init']);

    await writeMigration('20250102000000_add_name', ADD_NAME);
    const next = await applyMigrations({ url: TEST_DATABASE_URL, schema, migrationsDir: dir });
    expect(next.applied.map((m) => m.name)).toEqual(['20250102000000_add_name']);
    expect(await rows()).toHaveLength(2);
  });

  it('applies each migration exactly once when several replicas start together', async () => {
    await writeMigration('20250101000000_init', INIT);
    await writeMigration('20250102000000_add_name', ADD_NAME);
    await writeMigration('20250103000000_add_index', ADD_INDEX);

    const results = await Promise.all(
      [pool(), pool(), pool(), pool()].map((p) => applyMigrations({ pool: p, schema, migrationsDir: dir })),
    );

    const appliedNames = results.flatMap((r) => r.applied.map((m) => m.name)).sort();
    expect(appliedNames).toEqual(['20250101000000_init', '20250102000000_add_name', '20250103000000_add_index']);
    expect(await rows()).toHaveLength(3);
  });

  it('refuses to start when an applied migration was edited, and applies nothing else', async () => {
    await writeMigration('20250101000000_init', INIT);
    await applyMigrations({ pool: pool(), schema, migrationsDir: dir });

    await writeMigration('20250101000000_init', INIT.replace('INTEGER', 'BIGINT'));
    await writeMigration('20250102000000_add_name', ADD_NAME);

    expect(await codeOf(applyMigrations({ pool: pool(), schema, migrationsDir: dir }))).toBe(
      'migration_checksum_mismatch',
    );
    expect((await rows()).map((r) => r.migration_name)).toEqual(['20250101000000_init']);
  });

  it('accepts an applied migration whose file differs only in line endings', async () => {
    await writeMigration('20250101000000_init', `${INIT}${ADD_NAME}`);
    await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    await writeMigration('20250101000000_init', `${INIT}${ADD_NAME}`.replace(/\n/g, '\r\n'));

    const result = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    expect(result.alreadyApplied).toEqual(['20250101000000_init']);
  });

  it('records a failing migration as failed, rolls its changes back and blocks later starts until resolved', async () => {
    await writeMigration('20250101000000_init', INIT);
    // The first statement succeeds, the second fails: the first must not survive.
    await writeMigration(
      '20250102000000_broken',
      'CREATE TABLE "half_done" ("id" INTEGER);\nALTER TABLE "no_such_table" ADD COLUMN "x" INTEGER;\n',
    );
    await writeMigration('20250103000000_add_name', ADD_NAME);

    expect(await codeOf(applyMigrations({ pool: pool(), schema, migrationsDir: dir }))).toBe('migration_failed');

    const [init, broken] = await rows();
    expect(init.finished_at).not.toBeNull();
    expect(broken.migration_name).toBe('20250102000000_broken');
    expect(broken.finished_at).toBeNull();
    expect(broken.rolled_back_at).toBeNull();
    expect(broken.applied_steps_count).toBe(0);
    expect(broken.logs).toContain('no_such_table');
    expect(broken.logs).toContain('42P01');
    const halfDone = await admin.query(`SELECT to_regclass($1) AS t`, [`"${schema}"."half_done"`]);
    expect(halfDone.rows[0].t).toBeNull();

    // Even with the file fixed, a recorded failure blocks until an operator resolves it.
    await writeMigration('20250102000000_broken', 'CREATE TABLE "half_done" ("id" INTEGER);\n');
    expect(await codeOf(applyMigrations({ pool: pool(), schema, migrationsDir: dir }))).toBe('migration_failed');
    expect(await rows()).toHaveLength(2);

    // The operator's way out, as with Prisma: mark it rolled back, then start again.
    await admin.query(`UPDATE "${schema}"."_prisma_migrations" SET rolled_back_at = now() WHERE finished_at IS NULL`);
    const resumed = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    expect(resumed.applied.map((m) => m.name)).toEqual(['20250102000000_broken', '20250103000000_add_name']);
  });

  it('keeps _prisma_migrations exactly in Prisma’s format', async () => {
    await writeMigration('20250101000000_init', INIT);
    await applyMigrations({ pool: pool(), schema, migrationsDir: dir });

    const columns = await admin.query(
      `SELECT column_name, data_type, is_nullable, character_maximum_length, column_default
         FROM information_schema.columns WHERE table_schema = $1 AND table_name = '_prisma_migrations'
        ORDER BY ordinal_position`,
      [schema],
    );
    expect(columns.rows).toEqual([
      {
        column_name: 'id',
        data_type: 'character varying',
        is_nullable: 'NO',
        character_maximum_length: 36,
        column_default: null,
      },
      {
        column_name: 'checksum',
        data_type: 'character varying',
        is_nullable: 'NO',
        character_maximum_length: 64,
        column_default: null,
      },
      {
        column_name: 'finished_at',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
        column_default: null,
      },
      {
        column_name: 'migration_name',
        data_type: 'character varying',
        is_nullable: 'NO',
        character_maximum_length: 255,
        column_default: null,
      },
      {
        column_name: 'logs',
        data_type: 'text',
        is_nullable: 'YES',
        character_maximum_length: null,
        column_default: null,
      },
      {
        column_name: 'rolled_back_at',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
        column_default: null,
      },
      {
        column_name: 'started_at',
        data_type: 'timestamp with time zone',
        is_nullable: 'NO',
        character_maximum_length: null,
        column_default: 'now()',
      },
      {
        column_name: 'applied_steps_count',
        data_type: 'integer',
        is_nullable: 'NO',
        character_maximum_length: null,
        column_default: '0',
      },
    ]);
    const pk = await admin.query(
      `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = $1::regclass AND i.indisprimary`,
      [`"${schema}"."_prisma_migrations"`],
    );
    expect(pk.rows).toEqual([{ attname: 'id' }]);

    const [row] = await rows();
    expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(row.checksum).toBe(sha256(INIT));
    expect(row.migration_name).toBe('20250101000000_init');
    expect(row.logs).toBeNull();
    expect(row.rolled_back_at).toBeNull();
    expect(row.applied_steps_count).toBe(1);
    expect(row.finished_at.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
  });

  it('waits for the migration lock and gives up with migration_lock_timeout', async () => {
    await writeMigration('20250101000000_init', INIT);
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATION_LOCK_KEY]);
      expect(await codeOf(applyMigrations({ pool: pool(), schema, migrationsDir: dir, lockTimeoutMs: 300 }))).toBe(
        'migration_lock_timeout',
      );
      await holder.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATION_LOCK_KEY]);
      const result = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
      expect(result.applied).toHaveLength(1);
    } finally {
      await holder.end();
    }
  });

  it('tries a migration again when its lock_timeout ran out behind a write in flight, and records no failure', async () => {
    await initThenAddName('100ms');
    const writer = await writeInFlight('widgets');
    const { warnings, migrate } = retrying(20, 50);
    const migrating = migrate();
    await until(() => warnings.length > 0);
    await writer.query('COMMIT');

    expect((await migrating).applied.map((m) => m.name)).toEqual(['20250102000000_add_name']);
    expect(warnings[0]).toMatchObject({ schema, migration: '20250102000000_add_name', code: '55P03', attempt: 1 });
    expect((await rows()).map((r) => [r.migration_name, r.finished_at !== null, r.logs])).toEqual([
      ['20250101000000_init', true, null],
      ['20250102000000_add_name', true, null],
    ]);
  });

  it('tries a migration again when Postgres aborted it to break a deadlock with a write in flight', async () => {
    await writeMigration('20250101000000_init', `${INIT}${GADGETS}`);
    await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    // Postgres checks a lock wait for a deadlock once, deadlock_timeout after the wait began,
    // so the migration is made the session that closes the cycle: it takes widgets, then
    // waits on an advisory lock the test holds until the writer (holding gadgets) waits for
    // widgets. Released, the migration waits for gadgets and its own check finds the cycle,
    // however slowly the steps before ran. The writer's check would come after 60 s.
    const gate = 7_310_001;
    await writeMigration(
      '20250102000000_add_name',
      `SET LOCAL deadlock_timeout = '1s';\nLOCK TABLE "widgets" IN ACCESS EXCLUSIVE MODE;\n` +
        `SELECT pg_advisory_xact_lock(${gate});\nALTER TABLE "gadgets" ADD COLUMN "name" TEXT;\n`,
    );
    const gatekeeper = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await gatekeeper.connect();
    clients.push(gatekeeper);
    await gatekeeper.query('SELECT pg_advisory_lock($1)', [gate]);
    const writer = await writeInFlight('gadgets');
    await writer.query(`SET LOCAL deadlock_timeout = '60s'`);
    const { warnings, migrate } = retrying(3, 50);
    const migrating = migrate();
    await until(async () => {
      const { rowCount } = await admin.query(
        `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = $1`,
        [gate],
      );
      return rowCount !== 0;
    });
    // Granted once the migration is aborted and rolled back: the writer then finishes.
    const writerLocked = writer.query(`LOCK TABLE "${schema}"."widgets" IN ROW EXCLUSIVE MODE`);
    await untilLockWaited(admin, `"${schema}"."widgets"`);
    await gatekeeper.query('SELECT pg_advisory_unlock($1)', [gate]);
    await writerLocked;
    await writer.query('COMMIT');

    expect((await migrating).applied.map((m) => m.name)).toEqual(['20250102000000_add_name']);
    expect(warnings.map((w) => w.code)).toEqual(['40P01']);
    expect((await rows()).every((r) => r.finished_at !== null && r.logs === null)).toBe(true);
  });

  it('gives up after the last attempt with migration_lock_timeout, records nothing, and the next start applies it', async () => {
    await initThenAddName('50ms');
    const writer = await writeInFlight('widgets');
    const { warnings, migrate } = retrying(3, 20);

    expect(await codeOf(migrate())).toBe('migration_lock_timeout');
    expect(warnings.map((w) => [w.attempt, w.waitMs])).toEqual([
      [1, 20],
      [2, 40],
    ]);
    // No failed row: a later start is not blocked.
    expect((await rows()).map((r) => r.migration_name)).toEqual(['20250101000000_init']);
    await writer.query('COMMIT');
    const next = await applyMigrations({ pool: pool(), schema, migrationsDir: dir });
    expect(next.applied.map((m) => m.name)).toEqual(['20250102000000_add_name']);
  });

  it('refuses a migrations folder that does not exist instead of migrating nothing', async () => {
    expect(await codeOf(applyMigrations({ pool: pool(), schema, migrationsDir: join(dir, 'nope') }))).toBe(
      'migration_failed',
    );
  });
});
