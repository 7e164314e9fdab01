// @ts-check
// Where a service's bundle lives and whether it is current. Kept apart from the bundler so
// the stack finds bundles without loading esbuild unless one must be made again.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** One ESM file made from dist/main.js and all it imports (scripts/bundle/bundle-service.mjs). */
export const BUNDLE_FILE = join('dist', 'main.bundle.js');
/** The files the bundle was made from, to tell when it is stale. */
export const INPUTS_FILE = join('dist', 'main.bundle.inputs.json');

/**
 * True when none of the files the bundle was made from changed since it was written (a
 * library rebuilt alone with `pnpm --filter <lib> run build` leaves its users' bundles stale).
 * @param {string} serviceDir
 */
function bundleIsCurrent(serviceDir) {
  const bundle = join(serviceDir, BUNDLE_FILE);
  const list = join(serviceDir, INPUTS_FILE);
  if (!existsSync(bundle) || !existsSync(list)) return false;
  const built = statSync(bundle).mtimeMs;
  const inputs = /** @type {string[]} */ (JSON.parse(readFileSync(list, 'utf8')));
  return inputs.every((input) => {
    try {
      return statSync(input).mtimeMs <= built;
    } catch {
      return false;
    }
  });
}

/**
 * The file each service runs from: its bundle, made again first when stale; dist/main.js
 * for a service built without one (tsc alone), or with `bundle: false` (STACK_BUNDLE=0: a
 * CPU profile then names each frame's package and file, scripts/flamegraph.mjs).
 * @template {string} Name
 * @param {string} rootDir
 * @param {readonly Name[]} names
 * @param {(line: string) => void} log
 * @param {{ bundle?: boolean }} [options]
 * @returns {Promise<Record<Name, string>>}
 */
export async function currentServiceEntries(rootDir, names, log, options = {}) {
  const entries = /** @type {Record<Name, string>} */ ({});
  for (const name of names) {
    const serviceDir = join(rootDir, 'services', name);
    const bundle = join(serviceDir, BUNDLE_FILE);
    if (options.bundle === false || !existsSync(bundle)) {
      entries[name] = join(serviceDir, 'dist', 'main.js');
      continue;
    }
    if (!bundleIsCurrent(serviceDir)) {
      log(`services/${name}/${BUNDLE_FILE} is older than what it was made from; bundling again`);
      const { bundleService } = await import('./bundle-service.mjs');
      await bundleService(serviceDir);
    }
    entries[name] = bundle;
  }
  return entries;
}
