import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';

import { matchesChecksum, migrationChecksum, readMigrationFiles } from './migration-files.js';

describe('migration files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'migration-files-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists migration folders oldest first with Prisma’s checksum, skipping the lock file', async () => {
    await writeFile(join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n');
    for (const [name, sql] of [
      ['20250301000000_c', 'SELECT 3;'],
      ['20250101000000_a', 'SELECT 1;'],
      ['20250201000000_b', 'SELECT 2;'],
    ] as const) {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'migration.sql'), sql);
    }
    const files = await readMigrationFiles(dir);
    expect(files.map((f) => f.name)).toEqual(['20250101000000_a', '20250201000000_b', '20250301000000_c']);
    expect(files[0]?.checksum).toBe(createHash('sha256').update('SELECT 1;').digest('hex'));
  });

  it('matches a checksum across line-ending conversions but not across edits', () => {
    const lf = 'CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n';
    const crlf = lf.replace(/\n/g, '\r\n');
    expect(matchesChecksum(crlf, migrationChecksum(lf))).toBe(true);
    expect(matchesChecksum(lf, migrationChecksum(crlf))).toBe(true);
    expect(matchesChecksum(lf.replace('b', 'c'), migrationChecksum(lf))).toBe(false);
  });
});
