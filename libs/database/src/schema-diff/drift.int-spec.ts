import { readdirSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';

import { TEST_DATABASE_URL } from '../testing/test-schema.js';
import { diffMigrationsToSchema } from './schema-diff.js';

// Every service's schema.prisma must describe exactly what its committed migrations
// build; a model change without a migration (or the reverse) fails here.
const servicesDir = fileURLToPath(new URL('../../../../services/', import.meta.url));
const services = readdirSync(servicesDir).filter((name) => {
  try {
    return readdirSync(join(servicesDir, name, 'prisma')).includes('schema.prisma');
  } catch {
    return false;
  }
});

describe('schema.prisma vs committed migrations', () => {
  it('finds every service', () => {
    expect(services.sort()).toEqual([
      'audit',
      'connection-broker',
      'gateway',
      'identity',
      'personal-server',
      'policy',
      'sync-worker',
    ]);
  });

  it.each(services)(
    '%s: migrations build exactly what schema.prisma describes',
    async (service) => {
      const prismaDir = join(servicesDir, service, 'prisma');
      const sql = await diffMigrationsToSchema({
        url: TEST_DATABASE_URL,
        schemaPath: join(prismaDir, 'schema.prisma'),
        migrationsDir: join(prismaDir, 'migrations'),
      });
      // On failure this prints the SQL the missing migration needs (pnpm db:new-migration writes it).
      expect(sql).toBe('');
    },
    30_000,
  );

  it('reports a model field that no migration adds', async () => {
    const prismaDir = join(servicesDir, 'identity', 'prisma');
    const work = await mkdtemp(join(tmpdir(), 'drift-'));
    try {
      const schema = await readFile(join(prismaDir, 'schema.prisma'), 'utf8');
      const changed = schema.replace(/(\n\s*name\s+String\n)/, '$1  plan String @default("free")\n');
      expect(changed).not.toBe(schema);
      await writeFile(join(work, 'schema.prisma'), changed);
      await copyFile(join(prismaDir, 'schema.prisma'), join(work, 'original.prisma'));

      const sql = await diffMigrationsToSchema({
        url: TEST_DATABASE_URL,
        schemaPath: join(work, 'schema.prisma'),
        migrationsDir: join(prismaDir, 'migrations'),
      });
      expect(sql).toMatch(/ALTER TABLE "organizations" ADD COLUMN\s+"plan" TEXT NOT NULL DEFAULT 'free'/);
      // Unqualified, so it applies to whichever schema it is run in.
      expect(sql).not.toMatch(/_schema_diff_|CREATE SCHEMA/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 30_000);
});
