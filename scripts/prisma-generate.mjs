#!/usr/bin/env node
// @ts-check
// A service's `prisma:generate` (run in the service's folder): `prisma generate`, skipped when
// the client in the schema's generator output was made from exactly these inputs. `pnpm test`
// asks for the clients twice (code health, then the build), and each generation costs a few
// seconds of CPU per service; a skipped one costs a hash. The inputs are the schema, the
// Prisma config and the versions of the generator and the client: any change to one of them,
// or a client folder without the stamp (deleted, interrupted), generates again.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const dir = process.cwd();
const schemaFile = join(dir, 'prisma', 'schema.prisma');
const schema = readFileSync(schemaFile, 'utf8');
const output = /^\s*output\s*=\s*"([^"]+)"/m.exec(schema)?.[1];
if (!output) {
  console.error(`${schemaFile}: the generator names no output folder`);
  process.exit(1);
}
const outputDir = resolve(dir, 'prisma', output);
const stampFile = join(outputDir, '.inputs.sha256');

const require = createRequire(join(dir, 'package.json'));
/** @param {string} pkg */
const versionOf = (pkg) => /** @type {{ version: string }} */ (require(`${pkg}/package.json`)).version;
const hash = createHash('sha256');
for (const part of [
  schema,
  existsSync(join(dir, 'prisma.config.ts')) ? readFileSync(join(dir, 'prisma.config.ts'), 'utf8') : '',
  versionOf('prisma'),
  versionOf('@prisma/client'),
]) {
  hash.update(`${part.length}:${part}`);
}
const stamp = hash.digest('hex');

if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp) {
  console.log(`Prisma client in ${output} is current with prisma/schema.prisma`);
  process.exit(0);
}
rmSync(stampFile, { force: true });
// The schema engine is a native binary that cannot be downloaded here, and generate does not need it.
const result = spawnSync(join(dir, 'node_modules', '.bin', 'prisma'), ['generate', '--no-hints'], {
  cwd: dir,
  stdio: 'inherit',
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true' },
});
if (result.status !== 0) process.exit(result.status ?? 1);
writeFileSync(stampFile, `${stamp}\n`);
