#!/usr/bin/env node
// The contract gate, run by `pnpm test` before anything else:
//  1. buf lint;
//  2. the committed generated TypeScript matches the .proto files (regenerated to a
//     temporary folder and compared), so nobody edits src/gen by hand or forgets `pnpm proto:gen`;
//  3. buf breaking against the contracts as they were at the previous commit (HEAD~1 in CI,
//     where the work tree is HEAD) and against HEAD (uncommitted edits on a developer's
//     machine), so a change that would break a running peer fails the suite.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const protoDir = fileURLToPath(new URL('..', import.meta.url));
const buf = join(protoDir, 'node_modules/.bin/buf');

function run(args, cwd = protoDir) {
  const result = spawnSync(buf, args, { cwd, encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}`.trim() };
}

function fail(step, output) {
  console.error(`proto check failed at ${step}:\n${output}`);
  process.exit(1);
}

function listFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .map((f) => String(f))
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

// 1. lint
const lint = run(['lint']);
if (!lint.ok) fail('buf lint', lint.output);

// 2. generated code is current
const scratch = mkdtempSync(join(tmpdir(), 'cg-proto-'));
try {
  cpSync(protoDir, scratch, {
    recursive: true,
    filter: (src) =>
      !/\/(node_modules|dist|src)(\/|$)/.test(relative(protoDir, src) ? `/${relative(protoDir, src)}` : ''),
  });
  // buf.gen.yaml names the local plugin by a relative path; point it at ours.
  const genYaml = readFileSync(join(scratch, 'buf.gen.yaml'), 'utf8').replace(
    './node_modules/.bin/protoc-gen-es',
    join(protoDir, 'node_modules/.bin/protoc-gen-es'),
  );
  writeFileSync(join(scratch, 'buf.gen.yaml'), genYaml);
  const gen = run(['generate'], scratch);
  if (!gen.ok) fail('buf generate', gen.output);
  const fresh = join(scratch, 'src/gen');
  const committed = join(protoDir, 'src/gen');
  const a = listFiles(fresh);
  const b = listFiles(committed);
  const stale = [...new Set([...a, ...b])].filter(
    (f) =>
      !a.includes(f) ||
      !b.includes(f) ||
      readFileSync(join(fresh, f), 'utf8') !== readFileSync(join(committed, f), 'utf8'),
  );
  if (stale.length > 0) fail('generated code', `src/gen is out of date for: ${stale.join(', ')}\nrun: pnpm proto:gen`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

// 3. breaking changes
function gitHas(ref) {
  try {
    execFileSync('git', ['cat-file', '-e', `${ref}:proto/buf.yaml`], { cwd: protoDir, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const gitDir = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: protoDir, encoding: 'utf8' }).trim();
for (const ref of ['HEAD', 'HEAD~1']) {
  if (!gitHas(ref)) {
    console.log(`proto: no contracts at ${ref}, nothing to compare against`);
    continue;
  }
  const breaking = run(['breaking', '--against', `${join(gitDir, '.git')}#ref=${ref},subdir=proto`]);
  if (!breaking.ok) fail(`buf breaking against ${ref}`, breaking.output);
}
console.log('proto: lint clean, generated code current, no breaking change');
