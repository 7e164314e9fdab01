import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { applyMigrations } from '../migrations/apply-migrations.js';
import { createPool } from '../pool.js';
import { quoteIdent } from '../schema-name.js';
import { TEST_DATABASE_URL } from '../testing/test-schema.js';
import { dropServiceRoles, provisionServiceRoles, serviceRoleName, type ServiceRoleSpec } from './service-roles.js';

const SERVICES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'services');
const SERVICES = ['audit', 'connection-broker', 'identity', 'personal-server', 'policy', 'sync-worker'] as const;
const prefix = `r${randomBytes(4).toString('hex')}_`;
const admin = createPool({ url: TEST_DATABASE_URL, schema: 'public', applicationName: 'test:roles', max: 2 });
const specs: ServiceRoleSpec[] = SERVICES.map((name) => ({
  schema: `${prefix}${name.replace(/-/g, '_')}`,
  role: serviceRoleName(prefix, `${name.replace(/-/g, '_')}_svc`),
  password: randomBytes(18).toString('base64url'),
  access: name === 'audit' ? 'append-only' : 'dml',
  ...(name === 'audit' ? { columnUpdates: { auditors: ['revoked_at'] } } : {}),
}));
const ownerRole = serviceRoleName(prefix, 'owner');
const auditOwnerRole = serviceRoleName(prefix, 'audit_owner');
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

beforeAll(async () => {
  for (const name of SERVICES) {
    const s = spec(name);
    const pool = createPool({ url: TEST_DATABASE_URL, schema: s.schema, applicationName: 'test:roles', max: 1 });
    try {
      await applyMigrations({
        pool,
        schema: s.schema,
        migrationsDir: join(SERVICES_DIR, name, 'prisma', 'migrations'),
      });
    } finally {
      await pool.end();
    }
  }
  await provisionServiceRoles(admin, { ownerRole, appendOnlyOwnerRole: auditOwnerRole, services: specs });
  // Idempotent: a second run changes nothing and does not fail.
  await provisionServiceRoles(admin, { ownerRole, appendOnlyOwnerRole: auditOwnerRole, services: specs });
}, 60_000);

afterAll(async () => {
  for (const client of clients.values()) await client.end();
  for (const s of specs) await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(s.schema)} CASCADE`);
  await dropServiceRoles(admin, [...specs.map((s) => s.role), ownerRole, auditOwnerRole]);
  await admin.end();
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
});
