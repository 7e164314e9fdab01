// @ts-check
// Where each service keeps its Prisma files, shared by db-migrate and db-new-migration.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/context_gateway';

/**
 * Every service with a prisma/migrations folder, in name order, with its schema name
 * (the service name with `_` for `-`, as libs/database serviceSchemaName has it).
 * @returns {{ name: string, schema: string, migrationsDir: string, schemaPath: string }[]}
 */
export function servicesWithMigrations() {
  const servicesDir = join(ROOT_DIR, 'services');
  return readdirSync(servicesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(servicesDir, entry.name, 'prisma', 'migrations')))
    .map((entry) => ({
      name: entry.name,
      schema: entry.name.replace(/-/g, '_'),
      migrationsDir: join(servicesDir, entry.name, 'prisma', 'migrations'),
      schemaPath: join(servicesDir, entry.name, 'prisma', 'schema.prisma'),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Imports a module of libs/database's build, or explains how to get one.
 * @param {string} entry path under libs/database/dist, e.g. 'index.js'
 */
export async function importDatabaseLib(entry) {
  const file = join(ROOT_DIR, 'libs', 'database', 'dist', entry);
  if (!existsSync(file)) {
    throw new Error(
      `${file} is missing: run \`pnpm build\` (or \`pnpm --filter @context-gateway/database... build\`) first.`,
    );
  }
  return import(file);
}

/** A URL with its password hidden, for messages. @param {string} url */
export function redactUrl(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparsable DATABASE_URL>';
  }
}
