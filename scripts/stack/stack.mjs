// @ts-check
// Starts the seven services as child processes against a given Postgres and NATS, waits
// until every one answers /readyz, and hands back their URLs and a stop(). Shared by the
// `pnpm start` CLI and the end-to-end test harness, so both run the stack the same way.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { currentServiceEntries } from '../bundle/bundle-files.mjs';
import { provisionRoles } from '../db/roles.mjs';
import { redactUrl, serviceBaseUrl } from './endpoints.mjs';
import { ensureDatabase } from './infra.mjs';
import { assignColours } from './log-lines.mjs';
import { runNatsBootstrap } from './nats-auth.mjs';
import { spawnManaged } from './processes.mjs';
import { DEFAULT_PORTS, isServiceName, SERVICE_NAMES } from './service-catalog.mjs';

/**
 * @typedef {import('./service-catalog.mjs').ServiceName} ServiceName
 * @typedef {import('./processes.mjs').ManagedProcess} ManagedProcess
 * @typedef {import('./processes.mjs').ExitInfo} ExitInfo
 * @typedef {{
 *   rootDir: string,
 *   databaseUrl: string,
 *   natsUrl: string,
 *   natsSeedFiles?: Record<string, string>,
 *   ports?: Partial<Record<ServiceName, number>>,
 *   env?: Record<string, string>,
 *   services?: string[],
 *   log?: (line: string) => void,
 *   readyTimeoutMs?: number,
 *   stopTimeoutMs?: number,
 *   migrate?: boolean,
 *   colour?: boolean,
 *   signal?: AbortSignal,
 * }} StackOptions
 * @typedef {{
 *   urls: Partial<Record<ServiceName, string>>,
 *   processes: Partial<Record<ServiceName, ManagedProcess>>,
 *   shards: ManagedProcess[],
 *   unexpectedExit: Promise<{ service: ServiceName } & ExitInfo>,
 *   databaseLogins: Partial<Record<ServiceName, { user: string, password: string }>>,
 *   entries: Partial<Record<ServiceName, string>>,
 *   stop(): Promise<void>,
 *   restart(name: ServiceName): Promise<void>,
 * }} RunningStack
 */

/** @param {number} ms */
const sleep = (ms) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Raised when the stack does not come up; `message` already names what failed and why. */
export class StackStartError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'StackStartError';
  }
}

/**
 * Node flags for every service process from STACK_NODE_ARGS (space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the stack under a benchmark: flags such
 * as --cpu-prof are refused in NODE_OPTIONS, so they are passed on the command line.
 * `--enable-source-maps` makes a bundle's stack traces name the .ts files; it is off for a
 * bundle by default, as decoding its map costs the first trace >100 MiB (docs/operations.md,
 * "What a service runs, and its source maps"). dist/main.js (STACK_BUNDLE=0) always runs with
 * it, as before bundling: tsc's per-file maps are small and decoded one file at a time.
 * @param {NodeJS.ProcessEnv} env
 * @param {string} entry the file the service runs from
 * @returns {string[]}
 */
function nodeArgs(env, entry) {
  const extra = (env.STACK_NODE_ARGS ?? '').split(/\s+/).filter((arg) => arg !== '');
  const maps = basename(entry) === 'main.js' && !extra.includes('--enable-source-maps');
  return [...extra, ...(maps ? ['--enable-source-maps'] : []), entry];
}

/**
 * Runs scripts/db-migrate.mjs when it exists. Without it, each service applies its own
 * migrations at start (under an advisory lock), so skipping is safe.
 * @param {string} rootDir
 * @param {NodeJS.ProcessEnv} env
 * @param {(line: string) => void} log
 */
async function runMigrations(rootDir, env, log) {
  const script = join(rootDir, 'scripts', 'db-migrate.mjs');
  if (!existsSync(script)) {
    log('scripts/db-migrate.mjs not found; each service applies its own migrations at start');
    return;
  }
  log('Applying database migrations (scripts/db-migrate.mjs)');
  const code = await new Promise((resolveRun) => {
    const child = spawn(process.execPath, [script], { cwd: rootDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', () => resolveRun(-1));
    child.once('exit', (exitCode) => resolveRun(exitCode ?? -1));
  });
  if (code !== 0) throw new StackStartError(`database migrations failed (scripts/db-migrate.mjs exited with ${code})`);
}

/**
 * One /readyz probe: 'ready', or a short reason it is not (shown if we time out).
 * @param {string} baseUrl
 * @returns {Promise<{ ready: boolean, detail: string }>}
 */
async function probeReady(baseUrl) {
  try {
    const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
    const body = await response.text();
    return { ready: response.status === 200, detail: `HTTP ${response.status} ${body.slice(0, 300)}` };
  } catch (error) {
    const cause = /** @type {{ cause?: { code?: string } }} */ (error).cause;
    return { ready: false, detail: cause?.code ?? (error instanceof Error ? error.message : String(error)) };
  }
}

/**
 * @param {StackOptions} options
 * @returns {Promise<RunningStack>}
 */
export async function startStack(options) {
  const rootDir = resolve(options.rootDir);
  const log = options.log ?? ((line) => console.log(line));
  const names = /** @type {ServiceName[]} */ (options.services ?? [...SERVICE_NAMES]);
  const unknown = names.filter((name) => !isServiceName(name));
  if (unknown.length > 0)
    throw new StackStartError(`unknown service(s): ${unknown.join(', ')}; known: ${SERVICE_NAMES.join(', ')}`);

  const missing = names.filter((name) => !existsSync(join(rootDir, 'services', name, 'dist', 'main.js')));
  if (missing.length > 0) {
    throw new StackStartError(
      `not built: ${missing.map((name) => `services/${name}/dist/main.js`).join(', ')} — run \`pnpm build\` (or start without --no-build)`,
    );
  }

  // Each service's bundle (dist/main.bundle.js) when built, made again first if a file it
  // was made from changed since (a library rebuilt alone); dist/main.js without one, or
  // with STACK_BUNDLE=0 (a CPU profile then names each frame's module).
  const entries = await currentServiceEntries(rootDir, names, log, {
    bundle: (options.env?.STACK_BUNDLE ?? process.env.STACK_BUNDLE) !== '0',
  });

  const ports = { ...DEFAULT_PORTS, ...options.ports };
  // Relative defaults (.data/keys/master.key) would resolve against each child's cwd;
  // absolute paths make every service agree on one key file.
  const keyFile = resolve(
    rootDir,
    options.env?.MASTER_KEY_FILE ?? process.env.MASTER_KEY_FILE ?? '.data/keys/master.key',
  );
  const keyDir = dirname(keyFile);
  // Only the key folder is private: a recursive mkdir with a mode would also lock its
  // parent (.data/), which the embedded Postgres, running as another user, must traverse.
  await mkdir(dirname(keyDir), { recursive: true });
  await mkdir(keyDir, { recursive: true, mode: 0o700 });

  /** @type {NodeJS.ProcessEnv} */
  const sharedEnv = {
    ...process.env,
    DATABASE_URL: options.databaseUrl,
    NATS_URL: options.natsUrl,
    MASTER_KEY_FILE: keyFile,
    GATEWAY_PUBLIC_URL: process.env.GATEWAY_PUBLIC_URL ?? `http://localhost:${ports.gateway}`,
    // The gateway forwards /oauth/* to identity's HTTP port (the authorization server).
    IDENTITY_HTTP_URL: serviceBaseUrl(process.env.HTTP_HOST, ports.identity),
    ...options.env,
  };

  // Each process presents its own NATS identity when the server asks (ensureNats made them).
  const natsIdentity = (/** @type {string} */ identity) =>
    options.natsSeedFiles ? { NATS_NKEY_SEED_FILE: options.natsSeedFiles[identity] } : {};
  // The database (migrations, then the logins) and NATS (streams, consumers) are prepared
  // side by side: neither needs the other, and each mostly waits on its server, so an e2e
  // stack's start-up pays for the longer of the two instead of both.
  const natsReady = runNatsBootstrap(rootDir, { ...sharedEnv, ...natsIdentity('bootstrap') }, log).catch((error) => {
    throw new StackStartError(/** @type {Error} */ (error).message);
  });
  const databaseReady = prepareDatabase(options, sharedEnv, log);
  // Both settle before either failure is reported: no child is left running behind a throw.
  const [database, nats] = await Promise.allSettled([databaseReady, natsReady]);
  if (database.status === 'rejected' && nats.status === 'rejected')
    throw new StackStartError(
      `${/** @type {Error} */ (database.reason).message}; and ${/** @type {Error} */ (nats.reason).message}`,
    );
  if (database.status === 'rejected') throw database.reason;
  if (nats.status === 'rejected') throw nats.reason;
  const logins = database.value;
  /** @param {ServiceName} name @returns {NodeJS.ProcessEnv} */
  const loginEnv = (name) => {
    const login = logins[name];
    return login ? { DATABASE_USER: login.user, DATABASE_PASSWORD: login.password, DATABASE_MIGRATIONS: 'verify' } : {};
  };

  // personal-server runs as SHARD_COUNT processes (docs/personal-server.md): `processes`
  // holds shard 0 (its /readyz is ready only when every shard answers over NATS); the
  // others are in `shards`, on ports the OS picks.
  const shardCount = Number(sharedEnv.SHARD_COUNT ?? '2');
  if (!Number.isInteger(shardCount) || shardCount < 1)
    throw new StackStartError(`SHARD_COUNT must be a positive integer, got ${sharedEnv.SHARD_COUNT}`);
  sharedEnv.SHARD_COUNT = String(shardCount);
  const width = prefixWidth([...names, ...(shardCount > 1 ? [`personal-server#${shardCount - 1}`] : [])]);
  // Postgres and NATS lines (from the CLI) share the palette, so nobody shares a colour.
  const colours = options.colour ? assignColours(['postgres', 'nats', ...SERVICE_NAMES]) : new Map();
  /** @type {Partial<Record<ServiceName, ManagedProcess>>} */
  const processes = {};
  /** @type {Partial<Record<ServiceName, string>>} */
  const urls = {};
  /** @type {ManagedProcess[]} */
  const shards = [];
  /** @type {Partial<Record<ServiceName, NodeJS.ProcessEnv>>} */
  const envs = {};
  let stopping = false;

  /** @type {(value: { service: ServiceName } & ExitInfo) => void} */
  let reportUnexpectedExit = () => {};
  /** @type {Promise<{ service: ServiceName } & ExitInfo>} */
  const unexpectedExit = new Promise((resolveExit) => {
    reportUnexpectedExit = resolveExit;
  });

  for (const name of names) {
    /** @type {NodeJS.ProcessEnv} */
    const env = { ...sharedEnv, ...natsIdentity(name), ...loginEnv(name), HTTP_PORT: String(ports[name]) };
    if (name === 'personal-server') {
      env.SHARD_ID = '0';
      for (let shard = 1; shard < shardCount; shard += 1) {
        const label = `personal-server#${shard}`;
        const extra = spawnManaged(label, process.execPath, nodeArgs(env, entries[name]), {
          cwd: rootDir,
          env: { ...env, HTTP_PORT: '0', SHARD_ID: String(shard) },
          write: log,
          width,
          colour: colours.get(name),
        });
        shards.push(extra);
        void extra.exited.then((info) => {
          if (stopping || extra.stopRequested()) return;
          log(`${label} exited unexpectedly (${describeExit(info)})`);
          reportUnexpectedExit({ service: name, ...info });
        });
      }
    }
    urls[name] = serviceBaseUrl(env.HTTP_HOST, ports[name]);
    envs[name] = env;
    spawnService(name);
  }

  /** @param {ServiceName} name */
  function spawnService(name) {
    const managed = spawnManaged(name, process.execPath, nodeArgs(envs[name] ?? sharedEnv, entries[name]), {
      cwd: rootDir,
      env: envs[name] ?? sharedEnv,
      write: log,
      width,
      colour: colours.get(name),
    });
    processes[name] = managed;
    void managed.exited.then((info) => {
      if (stopping || managed.stopRequested()) return;
      log(`${name} exited unexpectedly (${describeExit(info)})`);
      reportUnexpectedExit({ service: name, ...info });
    });
  }

  /**
   * Starts again a service that was stopped on purpose, with the environment it had, and
   * resolves once it is ready (the e2e tests: a shard that was down comes back).
   * @param {ServiceName} name
   */
  async function restart(name) {
    const previous = processes[name];
    if (!previous || !previous.stopRequested()) throw new StackStartError(`${name} was not stopped`);
    await previous.exited;
    spawnService(name);
    await waitUntilReady([name], urls, processes, options.readyTimeoutMs ?? 60_000, unexpectedExit, options.signal);
  }

  async function stop() {
    if (stopping) return;
    stopping = true;
    const timeoutMs = options.stopTimeoutMs ?? 15_000;
    await Promise.all([...Object.values(processes), ...shards].map((managed) => managed.stop(timeoutMs)));
  }

  try {
    await waitUntilReady(names, urls, processes, options.readyTimeoutMs ?? 60_000, unexpectedExit, options.signal);
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls, processes, shards, unexpectedExit, databaseLogins: logins, entries, stop, restart };
}

/**
 * Creates the database if needed, applies the migrations and gives each service its login
 * (unless `migrate: false`); resolves to the logins by service name.
 * @param {StackOptions} options
 * @param {NodeJS.ProcessEnv} sharedEnv
 * @param {(line: string) => void} log
 * @returns {Promise<Partial<Record<ServiceName, { user: string, password: string }>>>}
 */
async function prepareDatabase(options, sharedEnv, log) {
  log(`Database ${redactUrl(options.databaseUrl)}`);
  try {
    await ensureDatabase(options.databaseUrl);
  } catch (error) {
    throw new StackStartError(
      `cannot prepare the database at ${redactUrl(options.databaseUrl)}: ${/** @type {Error} */ (error).message}`,
    );
  }
  if (options.migrate === false) return {};
  await runMigrations(resolve(options.rootDir), sharedEnv, log);
  // A database role per service (scripts/db/roles.mjs): each runs with its own login,
  // which may not migrate, so it only verifies that the owner role's migrations are there.
  const logins = await provisionRoles({ url: options.databaseUrl, env: sharedEnv });
  log(`Database roles ready (prefix ${sharedEnv.DB_ROLE_PREFIX ?? 'cg_'}): one login per service`);
  return logins;
}

/**
 * Width of the name column in log lines: the longest name among the started services and
 * the infrastructure, so every line's JSON starts in the same column.
 * @param {readonly string[]} names
 */
export function prefixWidth(names) {
  return Math.max(...names.map((name) => name.length), 'postgres'.length);
}

/** @param {ExitInfo} info */
function describeExit({ code, signal }) {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

/**
 * Polls every service's /readyz until all answer 200. Fails fast when one exits, and on
 * timeout names the ones that are not ready with their last answer and log lines.
 * @param {ServiceName[]} names
 * @param {Partial<Record<ServiceName, string>>} urls
 * @param {Partial<Record<ServiceName, ManagedProcess>>} processes
 * @param {number} timeoutMs
 * @param {Promise<{ service: ServiceName } & ExitInfo>} unexpectedExit
 * @param {AbortSignal | undefined} signal
 */
async function waitUntilReady(names, urls, processes, timeoutMs, unexpectedExit, signal) {
  /** @type {{ service: ServiceName } & ExitInfo | undefined} */
  let exited;
  void unexpectedExit.then((info) => {
    exited = info;
  });
  const pending = new Set(names);
  /** @type {Map<ServiceName, string>} */
  const lastDetail = new Map();
  const deadline = Date.now() + timeoutMs;
  while (pending.size > 0) {
    if (signal?.aborted) throw new StackStartError('start-up interrupted');
    if (exited) {
      const managed = processes[exited.service];
      throw new StackStartError(
        `${exited.service} exited during start-up (${describeExit(exited)}). Its last log lines:\n${indent(managed?.lastLines() ?? [])}`,
      );
    }
    if (Date.now() > deadline) {
      const report = [...pending].map((name) => {
        const lines = processes[name]?.lastLines() ?? [];
        return `- ${name} (${urls[name]}/readyz: ${lastDetail.get(name) ?? 'no answer'})\n${indent(lines.slice(-10))}`;
      });
      throw new StackStartError(
        `not ready after ${Math.round(timeoutMs / 1000)} s: ${[...pending].join(', ')}\n${report.join('\n')}`,
      );
    }
    await Promise.all(
      [...pending].map(async (name) => {
        const result = await probeReady(/** @type {string} */ (urls[name]));
        lastDetail.set(name, result.detail);
        if (result.ready) pending.delete(name);
      }),
    );
    if (pending.size > 0) await sleep(100);
  }
}

/** @param {string[]} lines */
function indent(lines) {
  return lines.length === 0 ? '    (no output)' : lines.map((line) => `    ${line}`).join('\n');
}
