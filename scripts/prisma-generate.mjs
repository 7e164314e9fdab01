#!/usr/bin/env node
// @ts-check
// A service's `prisma:generate` (run in the service's folder): `prisma generate`, skipped when
// the client in the schema's generator output was made from exactly these inputs. `pnpm test`
// asks for the clients twice (code health, then the build), and each generation costs a few
// seconds of CPU per service; a skipped one costs a hash. The inputs are the schema, the
// Prisma config, this script, and the generator and the client as installed (their resolved
// folders, which name the version and any pnpm patch); the stamp also holds a digest of the
// generated files, so a client changed or cut short since (a hand-run `prisma generate` on
// another branch, deleted files) generates again, as does a folder without the stamp.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
/**
 * Where a package is installed (pnpm's `.pnpm/<name>@<version>_patch_hash=…` folder); a
 * package that hides its package.json yields '' and so never matches an older stamp.
 * @param {string} pkg
 */
const installedAt = (pkg) => {
  try {
    return dirname(realpathSync(require.resolve(`${pkg}/package.json`)));
  } catch {
    return `unresolved ${pkg} ${Date.now()}`;
  }
};
/** @param {string[]} parts */
const digest = (parts) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}`);
  return hash.digest('hex');
};
/** Every file under the client folder but the stamp, by path and content. */
const generated = () => {
  if (!existsSync(outputDir)) return '';
  const files = readdirSync(outputDir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((file) => file !== stampFile)
    .sort();
  return digest(files.flatMap((file) => [relative(outputDir, file), readFileSync(file, 'latin1')]));
};
const inputs = digest([
  schema,
  existsSync(join(dir, 'prisma.config.ts')) ? readFileSync(join(dir, 'prisma.config.ts'), 'utf8') : '',
  readFileSync(fileURLToPath(import.meta.url), 'utf8'),
  installedAt('prisma'),
  installedAt('@prisma/client'),
]);

if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === `${inputs} ${generated()}`) {
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
if (result.error) console.error(`prisma generate could not run: ${result.error.message}`);
else if (result.signal) console.error(`prisma generate was stopped by ${result.signal}`);
if (result.status !== 0) process.exit(result.status ?? 1);
writeFileSync(stampFile, `${inputs} ${generated()}\n`);
