// @ts-check
// Makes sure Postgres and NATS are there before the services start: use what is already
// listening at DATABASE_URL / NATS_URL, otherwise start a local one under .data/ and hand
// back a stop() for it. Never starts anything for a remote host — that would silently
// point the services at a different, empty database.
import { existsSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import net from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { parseEndpoint, redactUrl, withDatabase } from './endpoints.mjs';
import { prepareNatsCredentials } from './nats-auth.mjs';
import { spawnManaged } from './processes.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * @typedef {{ started: boolean, url: string, stop(): Promise<void>, natsSeedFiles?: Record<string, string> }} InfraHandle
 * @typedef {{ log?: (line: string) => void, width?: number, colour?: number, startTimeoutMs?: number, natsTestProbe?: boolean }} InfraOptions
 */

/** Raised when something the developer must install is missing; the CLI prints it as-is. */
export class MissingDependencyError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'MissingDependencyError';
  }
}

/**
 * True when something accepts TCP connections at host:port.
 * @param {string} host
 * @param {number} port
 * @param {number} [timeoutMs]
 * @returns {Promise<boolean>}
 */
function isReachable(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** @param {string} host */
function listenAddressFor(host) {
  if (host === '127.0.0.1' || host === '::1') return host;
  return 'localhost';
}

/**
 * As root, Postgres runs as the `postgres` OS user, which must be able to walk into the
 * data folder's parent. Our own .data/ may have been created private (0700) by an earlier
 * run; opening it for traversal (o+x, not listing) is enough and exposes no file.
 * @param {string} parentDir
 */
async function ensureTraversableByPostgresUser(parentDir) {
  await mkdir(parentDir, { recursive: true });
  if (process.getuid?.() !== 0) return;
  const { mode } = await stat(parentDir);
  if ((mode & 0o001) === 0) await chmod(parentDir, mode | 0o001);
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Uses the Postgres at `url` if it answers, else starts an embedded one on the URL's port
 * with its data in `dataDir` (kept between runs).
 * @param {string} url
 * @param {string} dataDir absolute path
 * @param {InfraOptions} [options]
 * @returns {Promise<InfraHandle>}
 */
export async function ensurePostgres(url, dataDir, options = {}) {
  const log = options.log ?? ((line) => console.log(line));
  const endpoint = parseEndpoint(url);
  if (await isReachable(endpoint.host, endpoint.port)) {
    return { started: false, url, stop: async () => {} };
  }
  if (!endpoint.isLocal) {
    throw new Error(
      `Postgres at ${redactUrl(url)} is not reachable, and it is not on this machine, so no embedded Postgres can stand in for it.`,
    );
  }
  log(`No Postgres at ${endpoint.host}:${endpoint.port}; starting an embedded Postgres with its data in ${dataDir}`);
  await ensureTraversableByPostgresUser(dirname(dataDir));
  const runnerOptions = {
    dataDir,
    port: endpoint.port,
    user: endpoint.user || 'postgres',
    password: endpoint.password,
    listen: listenAddressFor(endpoint.host),
  };
  const runner = spawnManaged(
    'postgres',
    process.execPath,
    [join(here, 'postgres-runner.mjs'), JSON.stringify(runnerOptions)],
    {
      cwd: here,
      env: process.env,
      write: log,
      width: options.width ?? 8,
      colour: options.colour,
      ipc: true,
      keepLines: 40,
    },
  );
  /** @type {Promise<void>} */
  const ready = new Promise((resolve, reject) => {
    runner.child.on('message', (/** @type {any} */ message) => {
      if (message?.type === 'ready') resolve();
      if (message?.type === 'error') reject(new Error(`embedded Postgres failed to start: ${message.message}`));
    });
    void runner.exited.then(({ code, signal }) =>
      reject(
        new Error(
          `embedded Postgres exited during start-up (code ${code}, signal ${signal}):\n${runner.lastLines().join('\n')}`,
        ),
      ),
    );
  });
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`embedded Postgres was not ready after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    await runner.stop(15_000);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    started: true,
    url,
    async stop() {
      // The runner stops Postgres (fast shutdown) on SIGTERM and then exits.
      await runner.stop(30_000);
      runner.child.connected && runner.child.disconnect();
    },
  };
}

/**
 * Where the nats-server binary is, if anywhere. Debian installs it in /usr/sbin, which is
 * not on every user's PATH, so look there too.
 * @param {string | undefined} pathEnv
 * @returns {string | undefined}
 */
function findNatsServer(pathEnv = process.env.PATH) {
  const dirs = [...(pathEnv ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** @param {number} port */
export function natsMissingMessage(port) {
  return [
    `NATS is not running at 127.0.0.1:${port}, and nats-server is not installed, so it cannot be started here.`,
    'Get it in one of these ways, then run the command again:',
    '  Debian/Ubuntu:  sudo apt-get install -y nats-server',
    '  macOS:          brew install nats-server',
    `  Docker:         docker run -d --name context-gateway-nats -p ${port}:4222 nats:2.10 -js`,
    '  Or run the whole stack in containers: docker compose up',
  ].join('\n');
}

/**
 * Uses the NATS at `url` if it answers (as it is: a server without authorization asks for
 * no credentials), else starts `nats-server -js` on the URL's port with JetStream's file
 * storage in `dataDir` and authorization on: one nkey user per service and the bootstrap,
 * with the rights generated from the proto catalog, their seeds in `dataDir`/credentials
 * (kept between runs) and handed back as `natsSeedFiles` for startStack.
 * @param {string} url
 * @param {string} dataDir absolute path
 * @param {InfraOptions} [options]
 * @returns {Promise<InfraHandle>}
 */
export async function ensureNats(url, dataDir, options = {}) {
  const log = options.log ?? ((line) => console.log(line));
  const endpoint = parseEndpoint(url);
  if (await isReachable(endpoint.host, endpoint.port)) {
    return { started: false, url, stop: async () => {} };
  }
  if (!endpoint.isLocal) {
    throw new Error(
      `NATS at ${redactUrl(url)} is not reachable, and it is not on this machine, so no local nats-server can stand in for it.`,
    );
  }
  const binary = findNatsServer();
  if (!binary) throw new MissingDependencyError(natsMissingMessage(endpoint.port));

  log(`No NATS at ${endpoint.host}:${endpoint.port}; starting ${binary} with JetStream data in ${dataDir}`);
  await mkdir(dataDir, { recursive: true });
  const args = ['-a', listenAddressFor(endpoint.host), '-p', String(endpoint.port), '-js', '-sd', dataDir];
  // Credentials in NATS_URL mean the services will present them; require the same ones.
  if (endpoint.user) args.push('--user', endpoint.user, '--pass', endpoint.password);
  // For measuring: e.g. NATS_SERVER_EXTRA_ARGS='-m 8222' (monitoring) or '-V -l <file>' (trace).
  const extra = process.env.NATS_SERVER_EXTRA_ARGS?.trim();
  if (extra) args.push(...extra.split(/\s+/));
  const credentials = endpoint.user
    ? undefined
    : await prepareNatsCredentials(join(dataDir, 'credentials'), { testProbe: options.natsTestProbe });
  if (credentials) args.unshift('--config', credentials.configFile);
  const server = spawnManaged('nats', binary, args, {
    cwd: dataDir,
    env: process.env,
    write: log,
    width: options.width ?? 8,
    colour: options.colour,
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  while (!(await isReachable(endpoint.host, endpoint.port, 250))) {
    if (!server.isRunning()) {
      throw new Error(`nats-server exited during start-up:\n${server.lastLines().join('\n')}`);
    }
    if (Date.now() > deadline) {
      await server.stop(5_000);
      throw new Error(
        `nats-server did not accept connections on port ${endpoint.port} in time:\n${server.lastLines().join('\n')}`,
      );
    }
    await sleep(100);
  }
  return {
    started: true,
    url,
    ...(credentials ? { natsSeedFiles: credentials.seedFiles } : {}),
    async stop() {
      await server.stop(10_000);
    },
  };
}

/**
 * Creates the database named in `url` if it does not exist yet (connecting to the server's
 * `postgres` maintenance database to do so).
 * @param {string} url
 * @returns {Promise<boolean>} true when it was created now
 */
export async function ensureDatabase(url) {
  const { database } = parseEndpoint(url);
  if (!database) throw new Error(`DATABASE_URL names no database: ${redactUrl(url)}`);
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    const existing = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (existing.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
      return true;
    } catch (error) {
      // Someone else (db-migrate, a service) created it between our check and now.
      if (
        /** @type {{ code?: string }} */ (error).code === '42P04' ||
        /** @type {{ code?: string }} */ (error).code === '23505'
      )
        return false;
      throw error;
    }
  } finally {
    await client.end();
  }
}
