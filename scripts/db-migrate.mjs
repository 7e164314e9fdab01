#!/usr/bin/env node
// @ts-check
// `pnpm db:migrate [service...]`: creates the database DATABASE_URL names if it is missing,
// then applies every service's committed migrations (services/*/prisma/migrations) to
// that service's own schema, as the NOLOGIN owner role (`SET ROLE <prefix>owner`, the audit
// schema as `<prefix>audit_owner`: scripts/db/roles.mjs), so no service login owns a table.
// Then `pnpm db:roles` gives each service its login. Services started with
// DATABASE_MIGRATIONS=apply (development, one login) also migrate at start.
//
// Runs the built libs/database (libs/database/dist): run `pnpm build` first.
// Env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/context_gateway; a superuser or a
// CREATEROLE admin), DB_ROLE_PREFIX (default `cg_`).
import { roleLayout, rolePrefix } from './db/roles.mjs';
import { DEFAULT_DATABASE_URL, importDatabaseLib, redactUrl, servicesWithMigrations } from './db/services.mjs';

async function main() {
  const url = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const only = process.argv.slice(2);
  const services = servicesWithMigrations().filter((service) => only.length === 0 || only.includes(service.name));
  const unknown = only.filter((name) => !services.some((service) => service.name === name));
  if (unknown.length > 0) {
    console.error(`no migrations found for: ${unknown.join(', ')}`);
    return 2;
  }

  const { applyMigrations, createPool, ensureDatabase, migrationOwnerRole, prepareMigrationOwners } =
    await importDatabaseLib('index.js');
  if (await ensureDatabase(url)) console.log(`created database ${redactUrl(url)}`);

  const layout = await roleLayout(rolePrefix());
  const admin = createPool({ url, schema: 'public', applicationName: 'db-migrate', max: 1 });
  try {
    await prepareMigrationOwners(admin, { ...layout, schemas: layout.services.map((s) => s.spec) });
  } finally {
    await admin.end();
  }

  for (const service of services) {
    const spec = layout.services.find((s) => s.name === service.name)?.spec;
    const role = migrationOwnerRole(layout, spec?.access ?? 'dml');
    const result = await applyMigrations({ url, schema: service.schema, migrationsDir: service.migrationsDir, role });
    const applied = /** @type {{ name: string }[]} */ (result.applied).map((m) => m.name);
    console.log(
      applied.length > 0
        ? `${service.name} (schema ${service.schema}, as ${role}): applied ${applied.join(', ')}`
        : `${service.name} (schema ${service.schema}, as ${role}): up to date`,
    );
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  // AppErrors (migration_failed, migration_checksum_mismatch, ...) carry a message written
  // to be read as is; anything else (Postgres unreachable) gets its code too.
  const { code, message } = /** @type {{ code?: string, message: string }} */ (error);
  console.error(`db:migrate failed${code ? ` [${code}]` : ''}: ${message}`);
  if (code === 'ECONNREFUSED') {
    console.error('Is Postgres running? See ENVIRONMENT.md / README for how to start it, or set DATABASE_URL.');
  }
  process.exitCode = 1;
}
