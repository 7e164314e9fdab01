#!/usr/bin/env node
// `pnpm test`: the whole gate, in the order that fails fastest.
//   0. code health (`pnpm lint`): formatting, types with the tests, lint, dead code;
//   1. contracts: buf lint, generated code current, buf breaking against the previous commit;
//   2. build every package (the end-to-end tier runs the services from dist/, as in production);
//   3. Jest, tier by tier: unit (no I/O), int (real Postgres and NATS), e2e (the services as
//      processes, driven through the gateway only).
// `pnpm test unit|int|e2e` runs one tier (after steps 1–2 for int and e2e).
// Before the int and e2e tiers it makes sure Postgres (TEST_DATABASE_URL) and NATS (NATS_URL)
// answer, starting the same local stand-ins as `pnpm start` if they do not, and creates the
// test database. Ends with one line `N passed, N failed, N skipped` so any CI can read it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureDebianPackage } from './stack/apt.mjs';
import { ensureChromium } from './stack/browser.mjs';
import { ensureDatabase, ensureNats, ensurePostgres } from './stack/infra.mjs';
import { ensurePkcs11Addon, ensureSoftHsm } from './stack/key-store.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
// Integration tests make their own schemas inside this database; e2e stacks make their own databases.
const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/context_gateway_test';
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const tiers = ['unit', 'int', 'e2e'];
const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const selected = asked.length > 0 ? asked : tiers;
for (const t of selected) {
  if (!tiers.includes(t)) {
    console.error(`unknown tier "${t}"; use one of ${tiers.join(', ')}`);
    process.exit(2);
  }
}

function step(title, command, args, env = {}) {
  console.log(`\n=== ${title}`);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  console.log(
    `=== ${title}: ${result.status === 0 ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return result.status === 0;
}

const totals = { passed: 0, failed: 0, skipped: 0 };
let ok = true;

if (!step('code health (format, types, lint, dead code)', process.execPath, [join(root, 'scripts/check-code.mjs')]))
  ok = false;
if (ok && !step('contracts (buf lint, generated code, buf breaking)', 'pnpm', ['--silent', 'proto:check'])) ok = false;
if (ok && !step('build', 'pnpm', ['--silent', 'build'])) ok = false;

const started = [];
if (ok && selected.some((t) => t !== 'unit')) {
  try {
    started.push(await ensurePostgres(TEST_DATABASE_URL, join(root, '.data/postgres')));
    started.push(await ensureNats(NATS_URL, join(root, '.data/nats')));
    await ensureDatabase(TEST_DATABASE_URL);
  } catch (error) {
    console.error(`Postgres or NATS is not available for the tests:\n${error.message}`);
    ok = false;
  }
}
// The key-store tests (int) and TEST_KEY_PROVIDER=pkcs11 stacks (e2e) need SoftHSM2 and the addon.
if (ok && selected.some((t) => t !== 'unit')) {
  try {
    ensureSoftHsm((line) => console.log(line));
    ensurePkcs11Addon(root, (line) => console.log(line));
    // The Client ID Metadata Document tests (int, e2e) serve their documents over https with a
    // certificate made for the occasion by the openssl CLI, which a slim Debian may lack.
    ensureDebianPackage(
      {
        pkg: 'openssl',
        path: '/usr/bin/openssl',
        hint: 'the metadata-document tests make their certificates with it: `sudo apt-get install -y openssl`',
        why: 'for the test certificates',
      },
      (line) => console.log(line),
    );
  } catch (error) {
    console.error(error.message);
    ok = false;
  }
}
if (ok && selected.includes('e2e')) {
  try {
    ensureChromium();
  } catch (error) {
    console.error(error.message);
    ok = false;
  }
}

/**
 * How many test files a tier runs at once (docs/contributing.md, "Jest workers per tier").
 *   unit: in band. Its critical path is the differential spec, which already runs Cedar on two
 *     threads of its own; a second worker took nothing off the tier (measured both ways).
 *   int: one worker per core but one, and at least two: Postgres and NATS work in processes of
 *     their own, and in band one process holds every file's leftovers (6 GB by the tier's end,
 *     where GC took most of a small file's time). A worker whose heap passes 1.5 GB after a
 *     file is replaced.
 *   e2e: in band. Each file starts whole stacks; two at once would only fight over the cores.
 */
function workerArgs(tier) {
  if (tier !== 'int') return ['--runInBand'];
  return [`--maxWorkers=${Math.max(2, availableParallelism() - 1)}`, '--workerIdleMemoryLimit=1.5GB'];
}

const scratch = mkdtempSync(join(tmpdir(), 'cg-test-'));
for (const tier of selected) {
  if (!ok) break;
  const report = join(scratch, `${tier}.json`);
  const passed = step(
    `${tier} tests`,
    process.execPath,
    [
      join(root, 'node_modules/jest/bin/jest.js'),
      '--selectProjects',
      tier,
      '--json',
      `--outputFile=${report}`,
      ...workerArgs(tier),
      ...(tier === 'int' ? ['--logHeapUsage'] : []),
      // Once every result is written, exit: a failed test that left a server or timer open
      // must fail the run, not hang it until the CI deadline (Jest still names the leak).
      '--forceExit',
      ...extra,
    ],
    {
      NODE_OPTIONS: [
        process.env.NODE_OPTIONS ?? '',
        '--experimental-vm-modules --no-warnings=ExperimentalWarning',
        // In band one process keeps every file's module graph until the tier ends: the int
        // tier in band outgrew V8's default limit (about 4 GB on these machines) and reached
        // 6.2 GB, so the in-band tiers (unit, e2e) keep an 8 GB ceiling, a limit and not an
        // allocation. Int workers keep V8's default: each is replaced past 1.5 GB after a file,
        // and none passed 1.6 GB, so a file that needs 4 GB is a leak to find, not to allow.
        tier === 'int' ? '' : '--max-old-space-size=8192',
      ]
        .filter(Boolean)
        .join(' ')
        .trim(),
      TEST_DATABASE_URL,
      // The suite's fuzzers replay the same cases every run, so a red CI is reproducible; a
      // longer run with its own FUZZ_RUNS (pnpm test:fuzz) draws a fresh seed (docs/fuzzing.md).
      ...(process.env.FUZZ_SEED === undefined && process.env.FUZZ_RUNS === undefined ? { FUZZ_SEED: '20261204' } : {}),
      NATS_URL,
    },
  );
  try {
    const r = JSON.parse(readFileSync(report, 'utf8'));
    totals.passed += r.numPassedTests;
    totals.failed += r.numFailedTests;
    totals.skipped += r.numPendingTests + r.numTodoTests;
    if (r.numTotalTests === 0) {
      console.error(`${tier}: no tests ran`);
      ok = false;
    }
  } catch {
    // Jest died before writing its report: count the tier as failed.
    totals.failed += 1;
  }
  if (!passed) ok = false;
}
rmSync(scratch, { recursive: true, force: true });
for (const handle of started.reverse()) await handle.stop();

console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(ok && totals.failed === 0 ? 0 : 1);
