// @ts-check
// Bundles one service's tsc output (dist/main.js and everything it imports from dist/,
// libs/ and node_modules) into dist/main.bundle.js, so a start loads one file instead of
// ~2,200 modules (docs/contributing.md "A service's start-up CPU"). Built from dist/, not
// from .ts: tsc has already emitted the decorator metadata Nest injects by, which esbuild
// does not emit.
//   node scripts/bundle/bundle-service.mjs [serviceDir]   (the service's `build` runs it)
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

import { BUNDLE_FILE, INPUTS_FILE } from './bundle-files.mjs';
import { stripRedundantNames } from './strip-names.mjs';

/**
 * Left out of the bundle and loaded from node_modules at run time, each for a reason:
 * - graphene-pk11 (KEY_PROVIDER=pkcs11 only) loads the native addon pkcs11js by a path
 *   relative to itself; it is imported on demand from libs/crypto (see `relocated` below).
 * - @prisma/client: the runtime reads its query compiler (wasm) by its own module paths.
 * - pg-native: pg's optional native driver, not installed; pg requires it only on demand.
 */
const EXTERNAL = ['graphene-pk11', 'pkcs11js', '@prisma/client', '@prisma/client/*', 'pg-native'];

/**
 * Externals imported from a workspace library rather than from the service itself: the
 * service cannot resolve them (pnpm links a package only for those that depend on it), so
 * the import is resolved from the library's own folder at run time.
 */
const RELOCATED = { 'graphene-pk11': '@context-gateway/crypto' };

// Defines `require` for the CommonJS packages inside the ESM bundle (esbuild's own shim
// calls it), resolving from the bundle's folder as the service's own modules would.
// `__dirname` is left undefined on purpose: the one bundled user is pino's transport code
// (pino.transport() and its worker threads, resolved next to pino's own files), which no
// service starts (they log to stdout). A service that wanted a transport would need pino in
// EXTERNAL, not a __dirname naming the bundle's folder, where pino's worker files are not.
const BANNER = [
  "import { createRequire as __cgCreateRequire } from 'node:module';",
  "import { pathToFileURL as __cgPathToFileURL } from 'node:url';",
  'const require = __cgCreateRequire(import.meta.url);',
].join('\n');

/** @param {string} file */
function packageRootOf(file) {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${file}`);
}

/** @param {string} packageDir */
function dependenciesOf(packageDir) {
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  return Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies });
}

/** @param {string} from @param {string} to */
function relativeUrl(from, to) {
  const rel = relative(from, to).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/**
 * `import.meta.url` in a bundled module would name the bundle, not the module, so a module
 * that reads a file next to itself (the Prisma client, the integration manifests, the audit
 * decoder's worker) gets an expression naming where its own file is at run time: relative to
 * the bundle within the service, relative to the library's resolved entry otherwise (a
 * library's place differs between the workspace and `pnpm deploy`'s folder).
 * @param {string} serviceDir
 * @param {string} outDir
 */
function moduleUrlPlugin(serviceDir, outDir) {
  const serviceRequire = createRequire(join(serviceDir, 'package.json'));
  const deps = dependenciesOf(serviceDir);
  /**
   * An expression for the URL of workspace package `name`'s entry at run time: resolved from
   * the bundle when the service depends on it, else through the dependency that does.
   * @param {string} name
   */
  const entryUrl = (name) => {
    if (deps.includes(name)) return `import.meta.resolve(${JSON.stringify(name)})`;
    for (const via of deps) {
      let viaRoot;
      try {
        viaRoot = packageRootOf(serviceRequire.resolve(via));
      } catch {
        continue;
      }
      if (dependenciesOf(viaRoot).includes(name))
        return `__cgPathToFileURL(__cgCreateRequire(import.meta.resolve(${JSON.stringify(via)})).resolve(${JSON.stringify(name)})).href`;
    }
    throw new Error(`${name} is neither a dependency of ${serviceDir} nor of one of its dependencies`);
  };
  /** @param {string} name the file path of package `name`'s entry at build time */
  const entryPath = (name) => {
    if (deps.includes(name)) return serviceRequire.resolve(name);
    for (const via of deps) {
      try {
        return createRequire(serviceRequire.resolve(via)).resolve(name);
      } catch {
        // not through this one
      }
    }
    throw new Error(`${name} cannot be resolved from ${serviceDir}`);
  };
  /** @type {import('esbuild').Plugin} */
  const plugin = {
    name: 'module-url',
    setup(build) {
      build.onLoad({ filter: /\.m?js$/ }, (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const original = readFileSync(args.path, 'utf8');
        let contents = original;
        const root = packageRootOf(args.path);
        if (contents.includes('import.meta.url')) {
          let replacement;
          if (root === serviceDir) {
            replacement = `new URL(${JSON.stringify(relativeUrl(outDir, args.path))}, import.meta.url).href`;
          } else {
            const name = /** @type {{ name: string }} */ (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')))
              .name;
            const entry = entryPath(name);
            replacement = `new URL(${JSON.stringify(relativeUrl(dirname(entry), args.path))}, ${entryUrl(name)}).href`;
          }
          contents = contents.replaceAll('import.meta.url', replacement);
        }
        for (const [spec, owner] of Object.entries(RELOCATED)) {
          const call = `import('${spec}')`;
          if (!contents.includes(call)) continue;
          contents = contents.replaceAll(
            call,
            `import(__cgPathToFileURL(__cgCreateRequire(${entryUrl(owner)}).resolve(${JSON.stringify(spec)})).href)`,
          );
        }
        if (contents === original) return undefined;
        return { contents, loader: 'js', resolveDir: dirname(args.path) };
      });
    },
  };
  return plugin;
}

/**
 * A `require()` or `import()` inside node_modules of a package that is not installed (Nest's
 * optional packages through loadPackage, pg's native driver) stays a run-time one: it throws
 * there, on demand, as it did before bundling, instead of failing the build.
 * @param {Set<string>} optional collects them for the report
 */
function optionalRequirePlugin(optional) {
  /** @type {import('esbuild').Plugin} */
  const plugin = {
    name: 'optional-require',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.kind !== 'require-call' && args.kind !== 'dynamic-import') return undefined;
        if (args.pluginData?.optionalProbe) return undefined;
        if (!args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
        const result = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: { optionalProbe: true },
        });
        if (result.errors.length === 0) return result;
        optional.add(args.path);
        return { path: args.path, external: true };
      });
    },
  };
  return plugin;
}

/**
 * Writes `contents` to a file beside `file`, then renames it over `file` (atomic on one file
 * system), so no reader sees it half-written.
 * @param {string} file
 * @param {string | Uint8Array} contents
 */
function writeAtomically(file, contents) {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, file);
}

/**
 * @param {string} serviceDir
 * @returns {Promise<{ outfile: string, inputs: number, optional: string[], names: { removed: number, kept: number } }>}
 */
export async function bundleService(serviceDir) {
  const dir = resolve(serviceDir);
  const entry = join(dir, 'dist', 'main.js');
  const outfile = join(dir, BUNDLE_FILE);
  /** @type {Set<string>} */
  const optional = new Set();
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Nest and the logs name classes (`constructor.name`); the bundle's scope hoisting
    // would otherwise rename clashing ones (Config → Config2). Its `__name()` wrappers are
    // then removed where the engine names the function the same (stripRedundantNames).
    keepNames: true,
    // Written beside the bundle and named by its last line, used only when Node runs with
    // --enable-source-maps; they chain to tsc's maps, so traces name the .ts files.
    sourcemap: 'linked',
    sourcesContent: false,
    banner: { js: BANNER },
    external: EXTERNAL,
    plugins: [moduleUrlPlugin(dir, dirname(outfile)), optionalRequirePlugin(optional)],
    metafile: true,
    write: false,
    logLevel: 'error',
    logOverride: { 'empty-import-meta': 'silent' },
  });
  // Each file is written beside its final name and renamed over it, the map before the
  // bundle: a process starting the service meanwhile (another Jest worker, the stack
  // bundling it too) sees the old files or the new ones, never a part-written bundle.
  const files = [...result.outputFiles].sort((a, b) => Number(a.path === outfile) - Number(b.path === outfile));
  let names = { removed: 0, kept: 0 };
  for (const file of files) {
    if (file.path !== outfile) {
      writeAtomically(file.path, file.contents);
      continue;
    }
    // Same length, lines and columns: the map written above still describes it exactly.
    const stripped = stripRedundantNames(file.text);
    names = { removed: stripped.removed, kept: stripped.kept };
    writeAtomically(file.path, stripped.code);
  }
  // What the bundle was made from, relative to the service, and this bundler itself: the
  // stack bundles again when one of them is newer. Written last: a list newer than its
  // bundle would otherwise vouch for a bundle not yet in place.
  const inputs = [
    ...Object.keys(result.metafile.inputs)
      .filter((input) => !input.includes(':'))
      .map((input) => resolve(input)),
    fileURLToPath(import.meta.url),
    fileURLToPath(new URL('strip-names.mjs', import.meta.url)),
  ].map((input) => relative(dir, input));
  writeAtomically(join(dir, INPUTS_FILE), `${JSON.stringify(inputs)}\n`);
  return { outfile, inputs: inputs.length, optional: [...optional].sort(), names };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const serviceDir = resolve(process.argv[2] ?? process.cwd());
  const started = performance.now();
  const { outfile, inputs, optional, names } = await bundleService(serviceDir);
  const size = (statSync(outfile).size / 1e6).toFixed(1);
  console.log(
    `${relative(process.cwd(), outfile) || outfile}: ${inputs} modules, ${size} MB in ${Math.round(performance.now() - started)} ms` +
      `; __name wrappers: ${names.removed} removed, ${names.kept} kept` +
      (optional.length > 0 ? `; optional, left to run time: ${optional.join(', ')}` : ''),
  );
}
