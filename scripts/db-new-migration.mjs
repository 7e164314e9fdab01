#!/usr/bin/env node
// @ts-check
// `pnpm db:new-migration <service> <name>`: writes the migration that brings a service's
// committed migrations up to its prisma/schema.prisma, as
// services/<service>/prisma/migrations/<UTC timestamp>_<name>/migration.sql.
//
// It stands in for `prisma migrate dev --create-only`, whose native engine cannot be
// downloaded here: the official wasm build of the same engine computes the diff, against
// a throw-away schema the existing migrations were applied to (Prisma's shadow database,
// in one schema). Review the SQL before committing it; it is applied as written.
//
// Runs the built libs/database (libs/database/dist): run `pnpm build` first.
// Env: DATABASE_URL — any reachable database; only a temporary schema is created there.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

import { DEFAULT_DATABASE_URL, importDatabaseLib, ROOT_DIR, servicesWithMigrations } from './db/services.mjs';

const USAGE = 'usage: pnpm db:new-migration <service> <name>   (name: lower-case letters, digits and _)';

/** Prisma's folder prefix: the UTC time to the second. @param {Date} date */
function timestamp(date) {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

async function main() {
  const [service, name] = process.argv.slice(2);
  if (!service || !name || !/^[a-z0-9_]+$/.test(name)) {
    console.error(USAGE);
    return 2;
  }
  const target = servicesWithMigrations().find((candidate) => candidate.name === service);
  if (!target || !existsSync(target.schemaPath)) {
    console.error(`services/${service} has no prisma/schema.prisma and prisma/migrations`);
    return 2;
  }

  const url = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const { ensureDatabase } = await importDatabaseLib('index.js');
  const { diffMigrationsToSchema } = await importDatabaseLib('schema-diff/index.js');
  await ensureDatabase(url);
  const sql = await diffMigrationsToSchema({ url, schemaPath: target.schemaPath, migrationsDir: target.migrationsDir });
  if (sql === '') {
    console.log(`${service}: schema.prisma and its migrations already agree; nothing written.`);
    return 0;
  }

  const dir = join(target.migrationsDir, `${timestamp(new Date())}_${name}`);
  if (existsSync(dir)) {
    console.error(`${relative(ROOT_DIR, dir)} already exists; wait a second and run again.`);
    return 1;
  }
  await mkdir(dir);
  await writeFile(join(dir, 'migration.sql'), sql);
  console.log(`wrote ${relative(ROOT_DIR, join(dir, 'migration.sql'))}:\n\n${sql}`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  const { code, message } = /** @type {{ code?: string, message: string }} */ (error);
  console.error(`db:new-migration failed${code ? ` [${code}]` : ''}: ${message}`);
  process.exitCode = 1;
}
