import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { applyMigrations } from '../migrations/apply-migrations.js';
import { TEST_DATABASE_URL } from '../testing/test-schema.js';
import { loadMigrationList } from './migration-list.js';
import { withSchemaEngine } from './schema-engine.js';

// Prisma's own schema engine (its wasm build: the same Rust code as `migrate deploy`)
// must read a history our runner wrote as its own, and the other way round. This is
// what keeps `prisma migrate deploy`/`status`/`resolve` usable on our databases.
const identityPrisma = fileURLToPath(new URL('../../../../services/identity/prisma/', import.meta.url));
const NO_FILTERS = { externalTables: [], externalEnums: [] };

let schema: string;
let migrationsDir: string;
let datamodel: { path: string; content: string };

beforeEach(async () => {
  schema = `t_compat_${Math.random().toString(36).slice(2, 10)}`;
  // A private copy, so one test can edit an applied migration.
  migrationsDir = await mkdtemp(join(tmpdir(), 'compat-'));
  await cp(join(identityPrisma, 'migrations'), migrationsDir, { recursive: true });
  datamodel = { path: 'schema.prisma', content: await readFile(join(identityPrisma, 'schema.prisma'), 'utf8') };
});

afterEach(async () => {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
  await rm(migrationsDir, { recursive: true, force: true });
});

const prisma = <T>(use: Parameters<typeof withSchemaEngine<T>>[3]) =>
  withSchemaEngine(TEST_DATABASE_URL, schema, datamodel, use);

describe('compatibility with Prisma’s migration engine', () => {
  it('Prisma sees a history our runner wrote as complete and unedited, and has nothing to deploy', async () => {
    const ours = await applyMigrations({ url: TEST_DATABASE_URL, schema, migrationsDir });
    expect(ours.applied.length).toBeGreaterThan(0);
    const migrationsList = await loadMigrationList(migrationsDir);

    const diagnosis = await prisma((engine) =>
      engine.diagnoseMigrationHistory({ migrationsList, optInToShadowDatabase: false, filters: NO_FILTERS }),
    );
    expect(diagnosis).toMatchObject({
      hasMigrationsTable: true,
      editedMigrationNames: [],
      failedMigrationNames: [],
      history: null,
    });

    const deployed = await prisma((engine) => engine.applyMigrations({ migrationsList, filters: NO_FILTERS }));
    expect(deployed.appliedMigrationNames).toEqual([]);
  }, 30_000);

  it('our runner sees a history Prisma wrote as applied', async () => {
    const migrationsList = await loadMigrationList(migrationsDir);
    const deployed = await prisma((engine) => engine.applyMigrations({ migrationsList, filters: NO_FILTERS }));
    expect(deployed.appliedMigrationNames.length).toBeGreaterThan(0);

    const ours = await applyMigrations({ url: TEST_DATABASE_URL, schema, migrationsDir });
    expect(ours.applied).toEqual([]);
    expect(ours.alreadyApplied).toEqual(deployed.appliedMigrationNames);
  }, 30_000);

  it('Prisma and our runner agree that an applied migration was edited', async () => {
    const ours = await applyMigrations({ url: TEST_DATABASE_URL, schema, migrationsDir });
    const [first] = ours.applied;
    const file = join(migrationsDir, first!.name, 'migration.sql');
    await writeFile(file, `${await readFile(file, 'utf8')}\n-- edited\n`);

    const diagnosis = await prisma(async (engine) =>
      engine.diagnoseMigrationHistory({
        migrationsList: await loadMigrationList(migrationsDir),
        optInToShadowDatabase: false,
        filters: NO_FILTERS,
      }),
    );
    expect(diagnosis.editedMigrationNames).toEqual([first!.name]);
    await expect(applyMigrations({ url: TEST_DATABASE_URL, schema, migrationsDir })).rejects.toMatchObject({
      code: 'migration_checksum_mismatch',
    });
  }, 30_000);
});
