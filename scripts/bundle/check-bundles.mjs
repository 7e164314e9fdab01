// @ts-check
// Checks that each service's bundle loads where it is: run with an empty environment and an
// invalid LOG_LEVEL, a bundle evaluates every module it imports (and the externals it loads
// from node_modules: the Prisma client, ...) and then stops at its env check. The env error is
// the expected outcome; ERR_MODULE_NOT_FOUND or any other failure means the bundle would not
// start there. The image's deploy stage runs it on the deployed folder (Dockerfile).
//   node scripts/bundle/check-bundles.mjs [serviceDir ...]   (default: every services/*)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BUNDLE_FILE } from './bundle-files.mjs';

/** What every service's env check prints for LOG_LEVEL=bogus (libs/service-kit parseEnv). */
const EXPECTED = /Invalid environment:[\s\S]*LOG_LEVEL/;

/**
 * @param {string} serviceDir
 * @returns {string | undefined} why the bundle failed the check, or undefined when it passed
 */
function checkBundle(serviceDir) {
  const bundle = join(serviceDir, BUNDLE_FILE);
  if (!existsSync(bundle)) return `${BUNDLE_FILE} missing`;
  const run = spawnSync(process.execPath, [bundle], {
    cwd: serviceDir,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'bogus' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const output = `${run.stderr}${run.stdout}`;
  if (run.status === 1 && EXPECTED.test(output) && !output.includes('ERR_MODULE_NOT_FOUND')) return undefined;
  const firstLines = output.trim().split('\n').slice(0, 6).join('\n    ');
  return `exit ${run.status ?? run.signal ?? run.error?.message}, not the env error:\n    ${firstLines}`;
}

const rootDir = fileURLToPath(new URL('../..', import.meta.url));
const servicesDir = join(rootDir, 'services');
const dirs =
  process.argv.length > 2
    ? process.argv.slice(2).map((dir) => resolve(dir))
    : readdirSync(servicesDir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && existsSync(join(servicesDir, entry.name, 'package.json')))
        .map((entry) => join(servicesDir, entry.name));
let failed = 0;
for (const dir of dirs) {
  const started = performance.now();
  const problem = checkBundle(dir);
  const name = relative(process.cwd(), dir) || dir;
  if (problem === undefined) console.log(`ok   ${name} (${Math.round(performance.now() - started)} ms)`);
  else {
    failed += 1;
    console.error(`FAIL ${name}: ${problem}`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
