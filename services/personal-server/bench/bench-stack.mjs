// What the stack benchmarks share: the whole stack from dist/ on a fresh database with its
// own private nats-server (the same code `pnpm start` runs), plus a NATS connection with the
// e2e probe identity for driving the services over the bus.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import pg from 'pg';

import { describeEntries } from '../../../scripts/bundle/bundle-files.mjs';
import { freePort } from '../../../scripts/free-port.mjs';
import { ensureNats, startStack } from '../../../scripts/start.mjs';

const rootDir = fileURLToPath(new URL('../../..', import.meta.url));
const SERVICES = ['gateway', 'identity', 'policy', 'connection-broker', 'audit', 'personal-server', 'sync-worker'];

/**
 * Starts every service from dist/ on a fresh database `cg_bench_<name>_<random>` and a
 * private nats-server. `env` is added to every service's environment. Returns the stack, a
 * probe NATS connection, the scratch folder (keys, NATS storage) and `stop()`, which drops
 * the database and removes the folder.
 */
export async function startBenchStack(name, env = {}) {
  const scratch = mkdtempSync(join(tmpdir(), `cg-bench-${name}-`));
  const database = `cg_bench_${name}_${randomUUID().slice(0, 8)}`;
  const adminUrl = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const natsUrl = `nats://127.0.0.1:${await freePort()}`;
  const quiet = () => {};
  const nats = await ensureNats(natsUrl, join(scratch, 'nats'), { log: quiet, natsTestProbe: true });
  const ports = {};
  for (const s of SERVICES) ports[s] = await freePort();
  let stack;
  let nc;
  const stop = async () => {
    await nc?.drain().catch(() => {});
    await stack?.stop().catch(() => {});
    await nats.stop();
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => admin.end());
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    stack = await startStack({
      rootDir,
      databaseUrl: `postgres://postgres@127.0.0.1:5432/${database}`,
      natsUrl,
      natsSeedFiles: nats.natsSeedFiles,
      ports,
      log: quiet,
      readyTimeoutMs: 120_000,
      env: { LOG_LEVEL: 'warn', MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'), ...env },
    });
    console.log(describeEntries(stack.entries));
    nc = await connect({
      servers: natsUrl,
      authenticator: nkeyAuthenticator(
        new TextEncoder().encode(readFileSync(nats.natsSeedFiles['e2e-probe'], 'utf8').trim()),
      ),
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { stack, nc, natsUrl, databaseUrl: `postgres://postgres@127.0.0.1:5432/${database}`, scratch, stop };
}

/**
 * The pids of the nats-server a bench stack started (the process listening on natsUrl's
 * port), for counting its CPU. Warns when none is found: its CPU would read as 0, not as missing.
 */
export function natsServerPids(natsUrl) {
  const port = new URL(natsUrl).port;
  const pids = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args[0].endsWith('nats-server') && args[args.indexOf('-p') + 1] === port) pids.push(Number(pid));
    } catch {
      /* exited */
    }
  }
  if (pids.length === 0) console.warn(`no nats-server process with -p ${port} found; its CPU is not counted`);
  return pids;
}

/** One clock tick of /proc's CPU times, ms (USER_HZ = 100 on Linux). */
export const TICK_MS = 10;

/** CPU time of one process so far (ms), or undefined once it has exited. */
export function processTicksMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime + stime
  } catch {
    return undefined;
  }
}
/**
 * Write system calls a process made so far (/proc/<pid>/io syscw: write, writev, sendmsg…):
 * socket writes per query, a figure the machine's other load cannot inflate.
 */
export function writeCalls(pid) {
  try {
    return Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}
