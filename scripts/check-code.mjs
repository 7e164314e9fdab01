#!/usr/bin/env node
// @ts-check
// `pnpm lint` — the code-health gate, the first step of `pnpm test` (STYLE.md §16):
//   1. formatting (Prettier, .prettierrc.json);
//   2. types, tests included: `tsc --noEmit` on every tsconfig.json (each covers its
//      package's specs; tsconfig.build.json, which the build uses, leaves them out);
//   3. lint (ESLint with typescript-eslint's type-checked rules, eslint.config.mjs);
//   4. dead code: unused files, exports and dependencies (knip, knip.json).
// `pnpm lint --fix` formats and applies ESLint's fixes first; what remains is printed.
// Every step runs even when an earlier one failed, so one run shows everything to fix.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Every tsconfig.json that type-checks a part of the tree (sources and their tests). */
function typeProjects() {
  const projects = ['proto', 'test-e2e', 'deploy', 'docs', 'scripts/stack'];
  for (const group of ['libs', 'services', 'tools', 'sdk']) {
    for (const name of readdirSync(join(root, group))) projects.push(`${group}/${name}`);
  }
  return projects.filter((dir) => existsSync(join(root, dir, 'tsconfig.json')));
}

/** tsc on each project, two at a time (the machine has two cores); true when all passed. */
async function typecheck() {
  const started = Date.now();
  const queue = typeProjects();
  /** @type {string[]} */
  const failed = [];
  const worker = async () => {
    for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
      const project = dir;
      /** @type {Buffer[]} */
      const output = [];
      const code = await new Promise((resolve) => {
        const child = spawn(bin('tsc'), ['-p', join(project, 'tsconfig.json'), '--noEmit', '--pretty'], { cwd: root });
        child.stdout.on('data', (chunk) => output.push(chunk));
        child.stderr.on('data', (chunk) => output.push(chunk));
        child.on('close', resolve);
      });
      if (code !== 0) {
        failed.push(project);
        process.stdout.write(`tsc ${project}:\n${Buffer.concat(output).toString()}\n`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  const ok = failed.length === 0;
  console.log(
    `--- types (tests included): ${ok ? 'ok' : `FAILED in ${failed.join(', ')}`} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return ok;
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
