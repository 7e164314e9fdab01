// @ts-check
// Installs a Debian package the tests need (Chromium, SoftHSM2) from the distribution, never a
// tool's own download, which this kind of machine cannot reach.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { MissingDependencyError } from './infra.mjs';

/**
 * Returns when `path` exists. Missing on a Debian-family machine where we are root, `pkg` is
 * installed with apt-get; otherwise throws MissingDependencyError with `hint`.
 * @param {{ pkg: string; path: string; hint: string; why: string; canInstall?: boolean }} what
 * @param {(line: string) => void} log
 */
export function ensureDebianPackage(what, log) {
  if (existsSync(what.path)) return;
  const canInstall = (what.canInstall ?? true) && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) throw new MissingDependencyError(`${what.path} is missing: ${what.hint}`);
  log(`${what.path} is missing: installing Debian's ${what.pkg} package ${what.why}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', what.pkg],
  ]) {
    const result = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (result.status !== 0) {
      throw new MissingDependencyError(`apt-get ${args.join(' ')} failed (exit ${result.status}): ${what.hint}`);
    }
  }
  if (!existsSync(what.path)) throw new MissingDependencyError(`${what.path} is still missing: ${what.hint}`);
}
