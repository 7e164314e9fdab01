#!/usr/bin/env node
// @ts-check
// `pnpm lint` — the code-health gate, the first step of `pnpm test` (STYLE.md §16):
//   1. formatting (Prettier, .prettierrc.json);
//   2. types, tests included: every tsconfig.json (each covers its package's specs;
//      tsconfig.build.json, which the build uses, leaves them out), checked as `tsc --noEmit`
//      would, the projects with the same options together in one program (scripts/typecheck.mjs);
//   3. lint (ESLint with typescript-eslint's type-checked rules, eslint.config.mjs);
//   4. dead code: unused files, exports and dependencies (knip, knip.json).
// `pnpm lint --fix` formats and applies ESLint's fixes first; what remains is printed.
// Every step runs even when an earlier one failed, so one run shows everything to fix.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { typeGroups } from './typecheck.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const fix = process.argv.includes('--fix');
/** @param {string} name */
const bin = (name) => join(root, 'node_modules/.bin', name);
const PRETTIER_GLOB = '**/*.{ts,mjs,js,cjs,json,yaml,yml}';

/**
 * Runs a step to completion, its output straight through; true when it passed.
 * @param {string} title
 * @param {string} command
 * @param {string[]} args
 */
function step(title, command, args) {
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  const ok = result.status === 0;
  console.log(`--- ${title}: ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return ok;
}

/**
 * Types with the tests (scripts/typecheck.mjs): the projects that share their compiler options
 * are one program each, two programs at a time (the machine has two cores), the largest first;
 * true when all passed. Names only the projects whose folders hold the files with errors.
 */
async function typecheck() {
  const started = Date.now();
  /** @type {string[][]} */
  let queue;
  try {
    queue = typeGroups();
  } catch (error) {
    console.log(
      `--- types (tests included): FAILED, no groups: ${error instanceof Error ? error.message : String(error)}`,
    );
    return false;
  }
  const errors = new Set();
  const files = new Set();
  const projects = new Set();
  let failed = false;
  const worker = async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
      /** @type {Buffer[]} */
      const output = [];
      /** @type {Buffer[]} */
      const summary = [];
      const code = await new Promise((resolve) => {
        const child = spawn(process.execPath, [join(root, 'scripts/typecheck.mjs'), '--summary', ...group], {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        });
        child.stdout?.on('data', (chunk) => output.push(chunk));
        child.stderr?.on('data', (chunk) => output.push(chunk));
        child.stdio[3]?.on('data', (chunk) => summary.push(chunk));
        child.on('close', resolve);
      });
      if (code !== 0) {
        failed = true;
        process.stdout.write(Buffer.concat(output).toString());
        const text = Buffer.concat(summary).toString();
        /** @type {{ errors: string[], files: string[], projects: string[] }} */
        const found = text ? JSON.parse(text) : { errors: [], files: [], projects: group };
        found.errors.forEach((e) => errors.add(e));
        found.files.forEach((f) => files.add(f));
        found.projects.forEach((p) => projects.add(p));
      }
    }
  };
  await Promise.all([worker(), worker()]);
  const verdict = failed
    ? `FAILED, ${errors.size} errors in ${files.size} files, in ${[...projects].join(', ')}`
    : 'ok';
  console.log(`--- types (tests included): ${verdict} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return !failed;
}

// The services' Prisma clients are generated (src/generated is not committed); types and
// lint need them current with each schema.prisma: a client left from an older schema would
// fail the types falsely. Each service's prisma:generate (scripts/prisma-generate.mjs) skips a
// client already made from the same schema, config and Prisma version, so the build's second
// call costs nothing.
if (!step('prisma clients', 'pnpm', ['--silent', '-r', '--filter', './services/**', 'run', 'prisma:generate'])) {
  process.exit(1);
}

const results = [
  step('format', bin('prettier'), [fix ? '--write' : '--check', '--log-level', fix ? 'warn' : 'log', PRETTIER_GLOB]),
  await typecheck(),
  // No --cache: a type-aware rule's verdict on a file depends on the files it imports, and
  // ESLint's cache keys on the file alone, so a cached run can report errors already fixed.
  step('lint', bin('eslint'), ['.', ...(fix ? ['--fix'] : [])]),
  step('dead code', bin('knip'), ['--no-progress']),
];
if (results.includes(false)) {
  console.error(`\ncode health: FAILED${fix ? '' : ' (`pnpm lint --fix` formats and fixes what can be fixed)'}`);
  process.exit(1);
}
console.log('\ncode health: ok');
