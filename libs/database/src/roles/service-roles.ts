import type pg from 'pg';

import { assertSchemaName, quoteIdent, serviceSchemaName } from '../schema-name.js';

/** One service's schema and the login role its runtime connection uses. */
export interface ServiceRoleSpec {
  /** Schema the service owns (already migrated). */
  schema: string;
  /** Login role for the service's runtime connection. */
  role: string;
  /** Password for the login role (never logged). */
  password: string;
  /** `append-only`: SELECT and INSERT only (the audit log); `dml` otherwise. */
  access: 'dml' | 'append-only';
  /** Column UPDATE rights beside an append-only grant, e.g. `{ auditors: ['revoked_at'] }`. */
  columnUpdates?: Record<string, string[]>;
  /** NOLOGIN roles the login may `SET ROLE` to (audit's `audit_writer`, made by its migrations). */
  memberOf?: string[];
}

type ServiceAccess = Pick<ServiceRoleSpec, 'access' | 'columnUpdates' | 'memberOf'>;

/**
 * What each service's login may do in its own schema, declared once for the provisioning
 * script, the deployments and the tests. Services not named here get plain DML.
 * audit: the log is append-only; revoking an auditor sets its revoked_at, and the service
 * runs its log queries as `audit_writer` (SET ROLE), which its migration creates.
 */
const SERVICE_ACCESS: Record<string, ServiceAccess> = {
  audit: { access: 'append-only', columnUpdates: { auditors: ['revoked_at'] }, memberOf: ['audit_writer'] },
};

/** The role spec of one service (by its name, e.g. `connection-broker`) for a prefix and password. */
export function serviceRoleSpec(
  service: string,
  options: { prefix: string; password: string; schema?: string },
): ServiceRoleSpec {
  const schema = options.schema ?? serviceSchemaName(service);
  return {
    schema,
    role: serviceRoleName(options.prefix, serviceSchemaName(service)),
    password: options.password,
    ...(SERVICE_ACCESS[service] ?? { access: 'dml' }),
  };
}

export interface ServiceRolesOptions {
  /** NOLOGIN role that owns every schema and table; migrations run as (or SET ROLE to) it. */
  ownerRole: string;
  /** NOLOGIN role that owns append-only schemas; no service role is a member of it. */
  appendOnlyOwnerRole: string;
  services: ServiceRoleSpec[];
}

const MIGRATIONS_TABLE = '_prisma_migrations';

/** Role names for a prefix: `<prefix>owner`, `<prefix>audit_owner`, `<prefix><schema>`. */
export function serviceRoleName(prefix: string, name: string): string {
  return assertSchemaName(`${prefix}${name}`);
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

async function ensureRole(client: pg.ClientBase, role: string, login: 'LOGIN' | 'NOLOGIN'): Promise<void> {
  // Roles are cluster-wide: a concurrent twin may create it between check and create. Postgres
  // answers duplicate_object when the twin's role was committed before the check, and
  // unique_violation (on pg_authid's name index) when the twin's CREATE ROLE was still in flight.
  await client.query(
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(role)}) THEN
         CREATE ROLE ${quoteIdent(role)} ${login};
       END IF;
     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
     END $$`,
  );
}

/** The roles migrations run as; created before the first migration, so they own what it makes. */
export interface MigrationOwnersOptions {
  ownerRole: string;
  appendOnlyOwnerRole: string;
  /** Each service schema and whether it is append-only (owned by appendOnlyOwnerRole). */
  schemas: Pick<ServiceRoleSpec, 'schema' | 'access' | 'memberOf'>[];
}

/** The owner a schema's migrations run as (`SET ROLE`), per its access. */
export function migrationOwnerRole(
  options: Pick<MigrationOwnersOptions, 'ownerRole' | 'appendOnlyOwnerRole'>,
  access: ServiceRoleSpec['access'],
): string {
  return access === 'append-only' ? options.appendOnlyOwnerRole : options.ownerRole;
}

/**
 * Before migrations (run as a superuser or a CREATEROLE admin): creates the NOLOGIN owner
 * roles, lets them create schemas in this database, hands schemas that already exist (an
 * older install migrated by the admin login) and their tables to them, and creates the roles
 * a schema's migrations grant (`memberOf`), with ADMIN OPTION for that schema's owner so the
 * migration, running as the owner, may grant them. Idempotent.
 */
export async function prepareMigrationOwners(admin: pg.Pool, options: MigrationOwnersOptions): Promise<void> {
  const roles = options.schemas.flatMap((entry) => entry.memberOf ?? []).map((role) => assertSchemaName(role));
  await withRoles(
    admin,
    [...ensureOwners(options), ...roles.map((role): RoleToEnsure => ({ role, login: 'NOLOGIN' }))],
    async (client) => {
      const database = await client.query<{ name: string }>('SELECT current_database() AS name');
      const db = quoteIdent(String(database.rows[0]?.name));
      for (const owner of [options.ownerRole, options.appendOnlyOwnerRole]) {
        await client.query(`GRANT CREATE, CONNECT ON DATABASE ${db} TO ${quoteIdent(owner)}`);
      }
      for (const entry of options.schemas) {
        const owner = migrationOwnerRole(options, entry.access);
        for (const role of entry.memberOf ?? []) {
          await client.query(`GRANT ${quoteIdent(role)} TO ${quoteIdent(owner)} WITH ADMIN OPTION`);
        }
        await handOver(client, entry.schema, owner);
      }
    },
  );
}

type RoleToEnsure = { role: string; login: 'LOGIN' | 'NOLOGIN' };

function ensureOwners(options: Pick<MigrationOwnersOptions, 'ownerRole' | 'appendOnlyOwnerRole'>): RoleToEnsure[] {
  return [
    { role: options.ownerRole, login: 'NOLOGIN' },
    { role: options.appendOnlyOwnerRole, login: 'NOLOGIN' },
  ];
}

/** How often a role transaction that lost a catalog race is run again before its error is thrown. */
const CATALOG_RACE_ATTEMPTS = 12;

/**
 * Errors a concurrent twin of the same role work causes, which a fresh attempt does not hit:
 * GRANT, ALTER ROLE and ALTER DEFAULT PRIVILEGES update catalog rows in place, so two
 * provisioners (two stacks or two deploy jobs starting at once: roles are cluster-wide)
 * touching the same role or schema fail with "tuple concurrently updated" (XX000), a
 * unique violation on a catalog index (23505), or deadlock (40P01), rather than wait. Every statement here is idempotent, so the whole
 * transaction is simply run again.
 */
function lostCatalogRace(error: unknown): boolean {
  const { code, message, schema } = error as { code?: unknown; message?: unknown; schema?: unknown };
  return (
    code === '40P01' ||
    code === '40001' ||
    (code === 'XX000' && typeof message === 'string' && message.includes('tuple concurrently updated')) ||
    // The first GRANT of a role, or the first default privileges, inserts a catalog row
    // (pg_auth_members, pg_default_acl) that a twin may be inserting too.
    (code === '23505' && schema === 'pg_catalog')
  );
}

/** Creates the roles (outside the transaction: roles are cluster-wide), then runs `work` in one transaction. */
async function withRoles(
  admin: pg.Pool,
  roles: RoleToEnsure[],
  work: (client: pg.ClientBase) => Promise<void>,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const client = await admin.connect();
    try {
      for (const { role, login } of roles) await ensureRole(client, role, login);
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
      return;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (attempt >= CATALOG_RACE_ATTEMPTS || !lostCatalogRace(error)) throw error;
    } finally {
      client.release();
    }
    // A random pause, growing with the attempts, so the twins stop colliding.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 25 * attempt));
  }
}

/** Makes `owner` the owner of the schema (when it exists) and of its tables, views and functions. */
async function handOver(client: pg.ClientBase, schemaName: string, owner: string): Promise<string[]> {
  const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schemaName]);
  if (exists.rowCount === 0) return [];
  const schema = quoteIdent(assertSchemaName(schemaName));
  await client.query(`ALTER SCHEMA ${schema} OWNER TO ${quoteIdent(owner)}`);
  const tables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')`,
    [schemaName],
  );
  for (const { name } of tables.rows) {
    await client.query(`ALTER TABLE ${schema}.${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
  }
  const functions = await client.query<{ signature: string }>(
    `SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1`,
    [schemaName],
  );
  for (const { signature } of functions.rows) {
    await client.query(`ALTER FUNCTION ${signature} OWNER TO ${quoteIdent(owner)}`);
  }
  return tables.rows.map((t) => t.name);
}

/**
 * Creates (idempotently) the owner roles and one login role per service, hands every
 * schema and its objects to the owner role, and grants each service USAGE and DML on its
 * own schema only (SELECT, INSERT on append-only ones), nothing on any other schema and
 * no CREATE. Run as a superuser (or a role with CREATEROLE that owns the schemas), after
 * migrations. Passwords go in as SQL literals inside one transaction and are never logged.
 */
export async function provisionServiceRoles(admin: pg.Pool, options: ServiceRolesOptions): Promise<void> {
  const logins = options.services.map((service): RoleToEnsure => ({ role: service.role, login: 'LOGIN' }));
  await withRoles(admin, [...ensureOwners(options), ...logins], async (client) => {
    for (const service of options.services) {
      const schema = quoteIdent(assertSchemaName(service.schema));
      const role = quoteIdent(assertSchemaName(service.role));
      const owner = migrationOwnerRole(options, service.access);
      await client.query(
        `ALTER ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS PASSWORD ${literal(service.password)}`,
      );
      const tables = await handOver(client, service.schema, owner);
      await client.query(`REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`);
      await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${schema} FROM PUBLIC, ${role}`);
      await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${schema} FROM PUBLIC, ${role}`);
      await client.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
      const rights = service.access === 'append-only' ? 'SELECT, INSERT' : 'SELECT, INSERT, UPDATE, DELETE';
      await client.query(`GRANT ${rights} ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
      await client.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`);
      for (const [table, columns] of Object.entries(service.columnUpdates ?? {})) {
        const list = columns.map((c) => quoteIdent(c)).join(', ');
        await client.query(`GRANT UPDATE (${list}) ON ${schema}.${quoteIdent(table)} TO ${role}`);
      }
      // Tables a later migration adds (as the owner) get the same rights without a re-run.
      await client.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(owner)} IN SCHEMA ${schema} GRANT ${rights} ON TABLES TO ${role}`,
      );
      await client.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(owner)} IN SCHEMA ${schema} GRANT USAGE, SELECT ON SEQUENCES TO ${role}`,
      );
      for (const member of service.memberOf ?? []) {
        await client.query(`GRANT ${quoteIdent(assertSchemaName(member))} TO ${role}`);
      }
      if (tables.includes(MIGRATIONS_TABLE)) {
        // Services read which migrations are applied; only the owner writes them.
        await client.query(`REVOKE ALL ON ${schema}.${quoteIdent(MIGRATIONS_TABLE)} FROM ${role}`);
        await client.query(`GRANT SELECT ON ${schema}.${quoteIdent(MIGRATIONS_TABLE)} TO ${role}`);
      }
    }
  });
}

/** Drops the given roles (after their schemas are gone or reassigned); missing ones are skipped. */
export async function dropServiceRoles(admin: pg.Pool, roles: string[]): Promise<void> {
  for (const role of roles) {
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) continue;
    await admin.query(`DROP OWNED BY ${quoteIdent(role)} CASCADE`);
    await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  }
}
