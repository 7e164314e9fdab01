// @ts-check
// Where a service's bundle lives and whether it is current. Kept apart from the bundler so
// the stack finds bundles without loading esbuild unless one must be made again.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** One ESM file made from dist/main.js and all it imports (scripts/bundle/bundle-service.mjs). */
export const BUNDLE_FILE = join('dist', 'main.bundle.js');
/** The files the bundle was made from, to tell when it is stale. */
export const INPUTS_FILE = join('dist', 'main.bundle.inputs.json');

/** Services bundled again at once when several are stale: esbuild uses every core for each. */
const REBUNDLE_CONCURRENCY = 2;

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
  // Relative to the service's folder (an absolute path, as older lists hold, resolves to itself).
  const inputs = /** @type {string[]} */ (JSON.parse(readFileSync(list, 'utf8')));
  return inputs.every((input) => {
    try {
      return statSync(resolve(serviceDir, input)).mtimeMs <= built;
    } catch {
      return false;
    }
  });
}

/**
 * The bundler, or undefined when esbuild is not installed (`pnpm install --prod`): it is a
 * devDependency, loaded only when a bundle must be made again.
 * @returns {Promise<typeof import('./bundle-service.mjs') | undefined>}
 */
async function loadBundler() {
  try {
    return await import('./bundle-service.mjs');
  } catch (error) {
    if (/** @type {{ code?: string }} */ (error).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * The file each service runs from: its bundle, made again first when stale (two at a time);
 * dist/main.js for a service built without one (tsc alone), with `bundle: false`
 * (STACK_BUNDLE=0: a CPU profile then names each frame's package and file,
 * scripts/flamegraph.mjs), or stale where esbuild is not installed (with a warning).
 * @template {string} Name
 * @param {string} rootDir
 * @param {readonly Name[]} names
 * @param {(line: string) => void} log
 * @param {{ bundle?: boolean }} [options]
 * @returns {Promise<Record<Name, string>>}
 */
export async function currentServiceEntries(rootDir, names, log, options = {}) {
  const entries = /** @type {Record<Name, string>} */ ({});
  /** @type {Name[]} */
  const stale = [];
  for (const name of names) {
    const serviceDir = join(rootDir, 'services', name);
    const bundle = join(serviceDir, BUNDLE_FILE);
    if (options.bundle === false || !existsSync(bundle)) entries[name] = join(serviceDir, 'dist', 'main.js');
    else if (bundleIsCurrent(serviceDir)) entries[name] = bundle;
    else stale.push(name);
  }
  if (stale.length === 0) return entries;
  const bundler = await loadBundler();
  if (bundler === undefined) {
    for (const name of stale) {
      log(`services/${name}/${BUNDLE_FILE} is stale and esbuild is not installed; running dist/main.js`);
      entries[name] = join(rootDir, 'services', name, 'dist', 'main.js');
    }
    return entries;
  }
  const queue = [...stale];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      log(`services/${name}/${BUNDLE_FILE} is older than what it was made from; bundling again`);
      const serviceDir = join(rootDir, 'services', name);
      await bundler.bundleService(serviceDir);
      entries[name] = join(serviceDir, BUNDLE_FILE);
    }
  };
  await Promise.all(Array.from({ length: Math.min(REBUNDLE_CONCURRENCY, stale.length) }, worker));
  return entries;
}

/**
 * One line naming the file each service ran from, for a bench's header: a figure taken on the
 * bundle and one taken on dist/main.js (a profiled run, STACK_BUNDLE=0) are not the same code.
 * @param {Partial<Record<string, string>>} entries
 */
export function describeEntries(entries) {
  /** @type {Map<string, string[]>} */
  const byFile = new Map();
  for (const [name, entry] of Object.entries(entries)) {
    if (entry === undefined) continue;
    const file = relative(dirname(dirname(entry)), entry);
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  return `services ran from ${[...byFile].map(([file, names]) => `${file} (${names.join(', ')})`).join('; ')}`;
}
