import type pg from 'pg';

import { assertSchemaName, quoteIdent } from '../schema-name.js';

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

async function ensureRole(client: pg.ClientBase, role: string, login: string): Promise<void> {
  // Roles are cluster-wide: a concurrent twin may create it between check and create.
  await client.query(
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(role)}) THEN
         CREATE ROLE ${quoteIdent(role)} ${login};
       END IF;
     EXCEPTION WHEN duplicate_object THEN NULL;
     END $$`,
  );
}

/**
 * Creates (idempotently) the owner roles and one login role per service, hands every
 * schema and its objects to the owner role, and grants each service USAGE and DML on its
 * own schema only (SELECT, INSERT on append-only ones), nothing on any other schema and
 * no CREATE. Run as a superuser (or a role with CREATEROLE that owns the schemas), after
 * migrations. Passwords go in as SQL literals inside one transaction and are never logged.
 */
export async function provisionServiceRoles(admin: pg.Pool, options: ServiceRolesOptions): Promise<void> {
  const client = await admin.connect();
  try {
    await ensureRole(client, options.ownerRole, 'NOLOGIN');
    await ensureRole(client, options.appendOnlyOwnerRole, 'NOLOGIN');
    for (const service of options.services) await ensureRole(client, service.role, 'LOGIN');
    await client.query('BEGIN');
    for (const service of options.services) {
      const schema = quoteIdent(assertSchemaName(service.schema));
      const role = quoteIdent(assertSchemaName(service.role));
      const owner = quoteIdent(service.access === 'append-only' ? options.appendOnlyOwnerRole : options.ownerRole);
      await client.query(
        `ALTER ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS PASSWORD ${literal(service.password)}`,
      );
      await client.query(`ALTER SCHEMA ${schema} OWNER TO ${owner}`);
      const tables = await client.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')`,
        [service.schema],
      );
      for (const { name } of tables.rows) {
        await client.query(`ALTER TABLE ${schema}.${quoteIdent(name)} OWNER TO ${owner}`);
      }
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
      if (tables.rows.some((t) => t.name === MIGRATIONS_TABLE)) {
        // Services read which migrations are applied; only the owner writes them.
        await client.query(`REVOKE ALL ON ${schema}.${quoteIdent(MIGRATIONS_TABLE)} FROM ${role}`);
        await client.query(`GRANT SELECT ON ${schema}.${quoteIdent(MIGRATIONS_TABLE)} TO ${role}`);
      }
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
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
