import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One `prisma/migrations/<timestamp>_<name>/migration.sql`, as Prisma lays them out. */
export interface MigrationFile {
  /** The folder name, e.g. `20250101120000_init`; this is `migration_name` in the table. */
  name: string;
  sql: string;
  /** sha256 (hex) of migration.sql, as Prisma computes it. */
  checksum: string;
}

export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/**
 * Prisma accepts an applied migration whose file differs from what was applied only in
 * line endings (a checkout with autocrlf); so do we, or the same repository would start
 * on Linux and refuse on Windows.
 */
export function matchesChecksum(sql: string, checksum: string): boolean {
  if (migrationChecksum(sql) === checksum) return true;
  const lf = sql.replace(/\r\n/g, '\n');
  return migrationChecksum(lf) === checksum || migrationChecksum(lf.replace(/\n/g, '\r\n')) === checksum;
}

/**
 * The migrations in a Prisma migrations folder, oldest first. Folder names start with a
 * UTC timestamp, so name order is application order (the same rule Prisma uses).
 * Entries that are not folders (migration_lock.toml) are skipped.
 */
export async function readMigrationFiles(migrationsDir: string): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const files: MigrationFile[] = [];
  for (const name of names) {
    const sql = await readFile(join(migrationsDir, name, 'migration.sql'), 'utf8');
    files.push({ name, sql, checksum: migrationChecksum(sql) });
  }
  return files;
}
