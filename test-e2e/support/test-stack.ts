import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { type ConnectionOptions, nkeyAuthenticator } from '@nats-io/transport-node';
import pg from 'pg';

// The same code `pnpm start` runs: the tests start the stack exactly the way users do.
import { ensureNats, startStack } from '../../scripts/start.mjs';
import { keyStoreEnv } from './key-store.js';

export const rootDir = fileURLToPath(new URL('../..', import.meta.url));

export type ServiceName =
  'gateway' | 'identity' | 'policy' | 'connection-broker' | 'audit' | 'personal-server' | 'sync-worker';

interface LogLine {
  service: string;
  raw: string;
  json?: Record<string, unknown>;
}

export interface TestStack {
  gatewayUrl: string;
  urls: Partial<Record<ServiceName, string>>;
  natsUrl: string;
  /** A NATS client for the test itself (its own user, allowed everything: it inspects streams, plays peers). */
  natsOptions(): ConnectionOptions;
  /** Each identity's seed file (NATS_NKEY_SEED_FILE), for a service the test starts by hand. */
  natsSeedFiles: Record<string, string>;
  /** The key store settings the services run with (TEST_KEY_PROVIDER), for a service the test starts by hand. */
  keyStoreEnv: Record<string, string>;
  databaseUrl: string;
  /** Each service's own database login (a role per service), as the stack gave it to the service. */
  databaseLogins: Partial<Record<ServiceName, { user: string; password: string }>>;
  /**
   * The file each service runs from (its bundle, or dist/main.js with STACK_BUNDLE=0): a test
   * that starts a copy of a service by hand runs the same code as the stack.
   */
  serviceEntries: Partial<Record<ServiceName, string>>;
  /** Every line every service printed, parsed where it is JSON. */
  logs: LogLine[];
  pids(): Partial<Record<ServiceName, number | undefined>>;
  /** Every personal-server shard process (shard 0 first); `pids()['personal-server']` is shard 0. */
  shardPids(): number[];
  /** Stops one service with SIGTERM (SIGKILL after the timeout) and says how it exited. */
  stopService(service: ServiceName, timeoutMs?: number): Promise<{ code: number | null; signal: string | null }>;
  /** Starts a stopped service again with the environment it had; resolves once it is ready. */
  restartService(service: ServiceName): Promise<void>;
  stopNats(): Promise<void>;
  startNats(): Promise<void>;
  stop(): Promise<void>;
}

/** Ports handed out by this process, never handed out twice. */
const handedOut = new Set<number>();

/** Whether a listener can bind `port` on loopback right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port for a service of a test stack to listen on. Chosen below Linux's ephemeral range
 * (32768–60999): a port the OS picked with listen(0) is one it also hands to outgoing
 * connections, and with several stacks starting at once a client socket to Postgres or NATS
 * took one before its service bound it (EADDRINUSE at start-up).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found below the ephemeral range');
}

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A whole stack for one test file: a fresh database, a private nats-server (so no other
 * stack's queue groups can answer our requests and JetStream state starts empty), free
 * ports, every service as a child process from its dist/. Logs are kept in memory and in
 * test-results/ for post-mortems.
 */
export async function startTestStack(name: string, env: Record<string, string> = {}): Promise<TestStack> {
  const id = randomUUID().slice(0, 8);
  const database = `cg_e2e_${id}`;
  // Roles are cluster-wide: each stack has its own, dropped with its database.
  const rolePrefix = `e2e_${id}_`;
  const admin = new URL(ADMIN_URL);
  const databaseUrl = `${admin.protocol}//${admin.username}@${admin.host}/${database}`;
  const natsPort = await freePort();
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const scratch = mkdtempSync(join(tmpdir(), `cg-e2e-${name}-`));
  const natsDir = join(scratch, 'nats');
  const logs: LogLine[] = [];
  const log = (line: string) => {
    const bar = line.indexOf('|');
    const service = bar > 0 ? line.slice(0, bar).trim() : '';
    const raw = bar > 0 ? line.slice(bar + 1).trim() : line;
    let json: Record<string, unknown> | undefined;
    try {
      json = raw.startsWith('{') ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    logs.push({ service, raw, json });
  };

  let nats = await ensureNats(natsUrl, natsDir, { log, natsTestProbe: true });
  const ports: Record<string, number> = {};
  for (const service of [
    'gateway',
    'identity',
    'policy',
    'connection-broker',
    'audit',
    'personal-server',
    'sync-worker',
  ]) {
    ports[service] = await freePort();
  }
  const seedFiles = nats.natsSeedFiles ?? {};
  const keyStore = keyStoreEnv(rootDir, scratch);
  let stack;
  try {
    stack = await startStack({
      rootDir,
      databaseUrl,
      natsUrl,
      // The stack's own nats-server requires each service's credentials (scripts/stack/infra.mjs).
      ...(nats.natsSeedFiles ? { natsSeedFiles: nats.natsSeedFiles } : {}),
      ports,
      log,
      readyTimeoutMs: 90_000,
      env: {
        LOG_LEVEL: 'debug',
        MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'),
        ...keyStore,
        BOOT_TIMEOUT_MS: '20000',
        // Metrics listeners on OS-chosen ports: HTTP_PORT + 1000 of a free port need not be free.
        // Each service logs its metrics_url when ready.
        METRICS_PORT: '0',
        DB_ROLE_PREFIX: rolePrefix,
        DB_ROLES_FILE: join(scratch, 'db-roles.json'),
        ...env,
      },
    });
  } catch (error) {
    dumpLogs(name, logs);
    await nats.stop();
    await dropDatabase(database, rolePrefix).catch(() => undefined);
    throw error;
  }

  return {
    gatewayUrl: stack.urls.gateway!,
    urls: stack.urls,
    natsUrl,
    natsOptions: () => ({
      servers: natsUrl,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(seedFiles['e2e-probe']!, 'utf8').trim())),
    }),
    natsSeedFiles: seedFiles,
    keyStoreEnv: keyStore,
    databaseUrl,
    databaseLogins: stack.databaseLogins,
    serviceEntries: stack.entries,
    logs,
    pids: () => Object.fromEntries(Object.entries(stack.processes).map(([k, p]) => [k, p?.child.pid])),
    shardPids: () =>
      [stack.processes['personal-server'], ...(stack.shards ?? [])].flatMap((p) => (p?.child.pid ? [p.child.pid] : [])),
    stopService: (service, timeoutMs = 15_000) => stack.processes[service]!.stop(timeoutMs),
    restartService: (service) => stack.restart(service),
    async stopNats() {
      await nats.stop();
    },
    async startNats() {
      nats = await ensureNats(natsUrl, natsDir, { log, natsTestProbe: true });
    },
    async stop() {
      try {
        await stack.stop();
      } finally {
        dumpLogs(name, logs);
        await nats.stop();
        await dropDatabase(database, rolePrefix);
        rmSync(scratch, { recursive: true, force: true });
      }
    },
  };
}

/** Drops the stack's database, then its roles (nothing else holds them once it is gone). */
async function dropDatabase(database: string, rolePrefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    const roles = await client.query<{ name: string }>(
      `SELECT rolname AS name FROM pg_roles WHERE starts_with(rolname, $1)`,
      [rolePrefix],
    );
    for (const { name } of roles.rows) await client.query(`DROP ROLE IF EXISTS "${name}"`);
  } finally {
    await client.end();
  }
}

function dumpLogs(name: string, logs: LogLine[]): void {
  const dir = join(rootDir, 'test-results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `e2e-${name}.log`), logs.map((l) => `${l.service.padEnd(18)}| ${l.raw}`).join('\n'));
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
