import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { applyMigrations, verifyMigrations } from '../migrations/apply-migrations.js';
import { createPool } from '../pool.js';
import { quoteIdent } from '../schema-name.js';
import { TEST_DATABASE_URL } from '../testing/test-schema.js';
import {
  dropServiceRoles,
  migrationOwnerRole,
  prepareMigrationOwners,
  provisionServiceRoles,
  serviceRoleName,
  type ServiceRoleSpec,
  serviceRoleSpec,
} from './service-roles.js';

const SERVICES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'services');
const SERVICES = ['audit', 'connection-broker', 'identity', 'personal-server', 'policy', 'sync-worker'] as const;
const prefix = `r${randomBytes(4).toString('hex')}_`;
const admin = createPool({ url: TEST_DATABASE_URL, schema: 'public', applicationName: 'test:roles', max: 2 });
// The same specs scripts/db/roles.mjs provisions for the stack, on throwaway schemas.
const specs: ServiceRoleSpec[] = SERVICES.map((name) =>
  serviceRoleSpec(name, {
    prefix,
    password: randomBytes(18).toString('base64url'),
    schema: `${prefix}${name.replace(/-/g, '_')}`,
  }),
);
const ownerRole = serviceRoleName(prefix, 'owner');
const auditOwnerRole = serviceRoleName(prefix, 'audit_owner');
const owners = { ownerRole, appendOnlyOwnerRole: auditOwnerRole };
const scratch = mkdtempSync(join(tmpdir(), 'roles-int-'));
const clients = new Map<string, pg.Client>();

function spec(name: (typeof SERVICES)[number]): ServiceRoleSpec {
  return specs[SERVICES.indexOf(name)]!;
}

async function as(name: (typeof SERVICES)[number]): Promise<pg.Client> {
  const existing = clients.get(name);
  if (existing) return existing;
  const url = new URL(TEST_DATABASE_URL);
  url.username = spec(name).role;
  url.password = spec(name).password;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  await client.query(`SET search_path TO ${quoteIdent(spec(name).schema)}`);
  clients.set(name, client);
  return client;
}

async function refused(client: pg.Client, sql: string): Promise<string | undefined> {
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** A pool as one service's login, on its schema (what a service started with DATABASE_USER gets). */
function poolAs(name: (typeof SERVICES)[number]) {
  const url = new URL(TEST_DATABASE_URL);
  url.username = spec(name).role;
  url.password = spec(name).password;
  return createPool({ url: url.toString(), schema: spec(name).schema, applicationName: 'test:roles', max: 1 });
}

beforeAll(async () => {
  // As `pnpm db:migrate` does: owner roles first, then each schema migrated as its owner.
  await prepareMigrationOwners(admin, { ...owners, schemas: specs });
  for (const name of SERVICES) {
    const s = spec(name);
    const pool = createPool({ url: TEST_DATABASE_URL, schema: s.schema, applicationName: 'test:roles', max: 1 });
    try {
      await applyMigrations({
        pool,
        schema: s.schema,
        migrationsDir: join(SERVICES_DIR, name, 'prisma', 'migrations'),
        role: migrationOwnerRole(owners, s.access),
      });
    } finally {
      await pool.end();
    }
  }
  await provisionServiceRoles(admin, { ...owners, services: specs });
  // Idempotent: a second run changes nothing and does not fail.
  await provisionServiceRoles(admin, { ...owners, services: specs });
}, 60_000);

afterAll(async () => {
  rmSync(scratch, { recursive: true, force: true });
  for (const client of clients.values()) await client.end();
  for (const s of specs) await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(s.schema)} CASCADE`);
  await dropServiceRoles(admin, [...specs.map((s) => s.role), ownerRole, auditOwnerRole]);
  await admin.end();
});

describe('provisioning started twice at once', () => {
  it('succeeds for every run when several provision the same roles concurrently', async () => {
    // Two stacks or deploy jobs starting together provision the same cluster-wide roles: each
    // run must succeed (Postgres answers a lost catalog race with XX000 or a deadlock).
    const pools = [1, 2, 3, 4].map(() =>
      createPool({ url: TEST_DATABASE_URL, schema: 'public', applicationName: 'test:roles', max: 1 }),
    );
    try {
      for (let round = 0; round < 3; round += 1) {
        const runs = await Promise.allSettled(
          pools.map((pool) => provisionServiceRoles(pool, { ...owners, services: specs })),
        );
        expect(runs.filter((run) => run.status === 'rejected')).toEqual([]);
      }
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  }, 60_000);

  it('succeeds for every run when several create the same new roles and schemas concurrently', async () => {
    // Nothing exists yet: the twins race on CREATE ROLE and on the first GRANT of each role.
    const fresh = `r${randomBytes(4).toString('hex')}_`;
    const freshSpecs = SERVICES.map((name) =>
      serviceRoleSpec(name, {
        prefix: fresh,
        password: randomBytes(18).toString('base64url'),
        schema: `${fresh}${name.replace(/-/g, '_')}`,
      }),
    ).map((s) => ({ ...s, columnUpdates: undefined, memberOf: undefined }));
    const freshOwners = {
      ownerRole: serviceRoleName(fresh, 'owner'),
      appendOnlyOwnerRole: serviceRoleName(fresh, 'audit_owner'),
    };
    const pools = [1, 2, 3, 4].map(() =>
      createPool({ url: TEST_DATABASE_URL, schema: 'public', applicationName: 'test:roles', max: 1 }),
    );
    try {
      for (const s of freshSpecs) await admin.query(`CREATE SCHEMA ${quoteIdent(s.schema)}`);
      const runs = await Promise.allSettled(
        pools.map((pool) => provisionServiceRoles(pool, { ...freshOwners, services: freshSpecs })),
      );
      expect(runs.filter((run) => run.status === 'rejected')).toEqual([]);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
      for (const s of freshSpecs) await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(s.schema)} CASCADE`);
      await dropServiceRoles(admin, [
        ...freshSpecs.map((s) => s.role),
        freshOwners.ownerRole,
        freshOwners.appendOnlyOwnerRole,
      ]);
    }
  }, 60_000);
});

describe('a database role per service', () => {
  it.each([
    ['identity', 'connection-broker', 'grants'],
    ['connection-broker', 'identity', 'api_keys'],
    ['personal-server', 'identity', 'sessions'],
    ['identity', 'audit', 'audit_entries'],
    ['identity', 'personal-server', 'records'],
    ['sync-worker', 'identity', 'users'],
    ['sync-worker', 'connection-broker', 'connections'],
    ['sync-worker', 'audit', 'checkpoints'],
    ['policy', 'connection-broker', 'grants'],
  ] as const)('%s cannot read or write %s.%s', async (self, other, table) => {
    const client = await as(self);
    const target = `${quoteIdent(spec(other).schema)}.${quoteIdent(table)}`;
    expect(await refused(client, `SELECT * FROM ${target} LIMIT 1`)).toBe('42501');
    expect(await refused(client, `DELETE FROM ${target}`)).toBe('42501');
    expect(await refused(client, `CREATE TABLE ${quoteIdent(spec(other).schema)}.x (id int)`)).toBe('42501');
  });

  it.each(SERVICES.filter((name) => name !== 'audit'))(
    '%s reads and writes its own schema, but cannot create or alter',
    async (self) => {
      const client = await as(self);
      const { rows } = await client.query<{ relname: string }>(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> '_prisma_migrations' ORDER BY 1 LIMIT 1`,
        [spec(self).schema],
      );
      const table = quoteIdent(rows[0]!.relname);
      await expect(client.query(`SELECT * FROM ${table} LIMIT 1`)).resolves.toBeDefined();
      await expect(client.query(`DELETE FROM ${table} WHERE false`)).resolves.toBeDefined();
      expect(await refused(client, 'CREATE TABLE intruder (id int)')).toBe('42501');
      expect(await refused(client, `ALTER TABLE ${table} ADD COLUMN x int`)).toBe('42501');
      expect(await refused(client, 'DELETE FROM _prisma_migrations')).toBe('42501');
    },
  );

  it('the audit writer reads and appends, and cannot change, empty or unguard the log', async () => {
    const client = await as('audit');
    await expect(client.query('SELECT count(*) FROM audit_entries')).resolves.toBeDefined();
    const insert = await client.query<{ ok: boolean }>(
      `SELECT has_table_privilege(current_user, 'audit_entries', 'INSERT') AS ok`,
    );
    expect(insert.rows[0]!.ok).toBe(true);
    for (const table of ['audit_entries', 'audit_nodes', 'checkpoints']) {
      expect(await refused(client, `ALTER TABLE ${table} DISABLE TRIGGER ALL`)).toBe('42501');
      expect(await refused(client, `ALTER TABLE ${table} ADD COLUMN x int`)).toBe('42501');
      const column = await client.query<{ name: string }>(
        `SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position LIMIT 1`,
        [table],
      );
      const first = quoteIdent(column.rows[0]!.name);
      expect(await refused(client, `UPDATE ${table} SET ${first} = ${first}`)).toBe('42501');
      expect(await refused(client, `DELETE FROM ${table}`)).toBe('42501');
      expect(await refused(client, `TRUNCATE ${table}`)).toBe('42501');
      expect(await refused(client, `DROP TABLE ${table}`)).toBe('42501');
    }
    expect(await refused(client, `SET ROLE ${quoteIdent(auditOwnerRole)}`)).toBe('42501');
    expect(await refused(client, `SET ROLE ${quoteIdent(ownerRole)}`)).toBe('42501');
  });

  it('migrates as the owner roles: no service login owns a schema or a table', async () => {
    const { rows } = await admin.query<{ schema: string; owner: string; tables: string[] }>(
      `SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner,
              array(SELECT DISTINCT tableowner::text FROM pg_tables t WHERE t.schemaname = n.nspname) AS tables
         FROM pg_namespace n WHERE n.nspname = ANY($1) ORDER BY 1`,
      [specs.map((s) => s.schema)],
    );
    expect(rows).toEqual(
      specs
        .map((s) => {
          const owner = migrationOwnerRole(owners, s.access);
          return { schema: s.schema, owner, tables: [owner] };
        })
        .sort((a, b) => a.schema.localeCompare(b.schema)),
    );
  });

  it('lets a service login verify its migrations, but not apply one, and names what is missing', async () => {
    const migrationsDir = join(SERVICES_DIR, 'policy', 'prisma', 'migrations');
    const pool = poolAs('policy');
    try {
      await expect(verifyMigrations({ pool, schema: spec('policy').schema, migrationsDir })).resolves.toBeDefined();
      // A build with one more migration than the database holds.
      const newer = join(scratch, 'migrations');
      for (const entry of readdirSync(migrationsDir)) {
        if (entry.endsWith('.toml')) continue;
        mkdirSync(join(newer, entry), { recursive: true });
        writeFileSync(join(newer, entry, 'migration.sql'), readFileSync(join(migrationsDir, entry, 'migration.sql')));
      }
      mkdirSync(join(newer, '29990101000000_later'));
      writeFileSync(join(newer, '29990101000000_later', 'migration.sql'), 'CREATE TABLE later (id int);\n');
      await expect(
        verifyMigrations({ pool, schema: spec('policy').schema, migrationsDir: newer }),
      ).rejects.toMatchObject({ code: 'migration_pending', message: expect.stringContaining('29990101000000_later') });
      await expect(
        applyMigrations({ pool, schema: spec('policy').schema, migrationsDir: newer }),
      ).rejects.toMatchObject({ code: '42501' });

      // The owner applies it; the service can use the new table at once (default privileges).
      const ownerPool = createPool({
        url: TEST_DATABASE_URL,
        schema: spec('policy').schema,
        applicationName: 'test:roles',
        max: 1,
      });
      try {
        await applyMigrations({
          pool: ownerPool,
          schema: spec('policy').schema,
          migrationsDir: newer,
          role: ownerRole,
        });
      } finally {
        await ownerPool.end();
      }
      await expect(
        verifyMigrations({ pool, schema: spec('policy').schema, migrationsDir: newer }),
      ).resolves.toBeDefined();
      await expect(pool.query('INSERT INTO later (id) VALUES (1)')).resolves.toBeDefined();
      expect((await pool.query('SELECT id FROM later')).rows).toEqual([{ id: 1 }]);
      const intruder = await as('sync-worker');
      expect(await refused(intruder, `SELECT * FROM ${quoteIdent(spec('policy').schema)}.later`)).toBe('42501');
    } finally {
      await pool.end();
    }
  });
});
