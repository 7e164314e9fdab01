// pnpm bench:audit (part 1): how many audit entries per second the audit service appends,
// sustained. Pre-loads N events into a private JetStream AUDIT stream, starts the real
// audit service (dist/) on a fresh schema, and times its consumer from the first entry to
// the last: decode, de-duplicate, leaf + tree hashing, one binary COPY per batch,
// ack after commit. Then a second phase publishes N more while it runs (steady state),
// each publish awaiting its own ack; and a third N more through the gateway's group commit
// (services/gateway AuditGroupCommit: the events of one event-loop turn in one message, one
// ack), which is how the gateway publishes.
//
//   BENCH_EVENTS=100000 BENCH_BATCH=2000 node services/audit/bench/append.bench.mjs
//   (BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the audit service)
//   BENCH_PROFILE_DIR=<dir>: the audit service runs with --cpu-prof into <dir>, and each
//   phase's self-time table of each of its threads (writer, decoder) is written there,
//   top-audit-<phase>-<thread>.txt, counting only that phase's samples; the publishers (this
//   process) likewise, top-publishers-<phase>.txt.
//   Each phase prints the CPU per event of every process, and of the audit service's writer
//   and decoder threads (from /proc/<pid>/task).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { create } from '@bufbuild/protobuf';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { createLogger } from '@context-gateway/observability';
import { AuditEventSchema, events, streams } from '@context-gateway/proto';
import pg from 'pg';

import { currentServiceEntries, describeEntries } from '../../../scripts/bundle/bundle-files.mjs';
import { selfTimeTable } from '../../../scripts/flamegraph.mjs';
import { freePort } from '../../../scripts/free-port.mjs';
import { benchEventInit } from './bench-event.mjs';

const N = Number(process.env.BENCH_EVENTS ?? 100_000);
const BATCH = process.env.BENCH_BATCH ?? '2000';
const DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : undefined;
if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
const NODE_ARGS = [
  ...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []),
  ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
];
/** V8's profile clock (process.hrtime's, shared by every process here), in microseconds. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
/** Each phase's span on the profile clock, for its own self-time tables. */
const windows = [];
const serviceDir = fileURLToPath(new URL('..', import.meta.url));
const groupCommitModule = join(serviceDir, '..', 'gateway', 'dist', 'audit', 'audit-group-commit.js');
if (!existsSync(join(serviceDir, 'dist', 'main.js')) || !existsSync(groupCommitModule)) {
  console.error('services/audit or services/gateway is not built: run `pnpm build` first');
  process.exit(1);
}

// The service runs as the stack runs it, its bundle when built (scripts/bundle/); module by
// module when profiled, so the self-time tables name each frame's package and file.
const { audit: main } = await currentServiceEntries(join(serviceDir, '..', '..'), ['audit'], console.log, {
  bundle: !PROFILE_DIR,
});
console.log(describeEntries({ audit: main }));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-audit-'));
const natsPort = await freePort();
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(scratch, 'nats')], {
  stdio: 'ignore',
  env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
});
await sleep(500);
const logger = createLogger({ service: 'bench', level: 'silent' });
const nc = await connectNats({
  url: `nats://127.0.0.1:${natsPort}`,
  name: 'bench-audit',
  logger,
  bootTimeoutMs: 5_000,
});
await ensureStreams(nc, [streams.audit, streams.deadLetters], logger);
const schema = `bench_audit_${randomUUID().slice(0, 8)}`;
const db = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });

const event = (i) => create(AuditEventSchema, benchEventInit(i));

const { AuditGroupCommit } = await import(groupCommitModule);

/** 256 publishers, each awaiting its event's ack before the next: one message per event, or grouped. */
async function publish(count, offset, { grouped = false } = {}) {
  const publisher = new JetStreamPublisher(nc);
  const group = new AuditGroupCommit(publisher, 5_000);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < count) {
        const i = offset + next++;
        if (grouped) await group.append(event(i));
        else await publisher.publish(events.auditRecorded, event(i));
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

const count = async () =>
  (await db.query(`SELECT count(*)::int AS n FROM ${schema}.audit_entries`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]
    .n;

async function waitFor(total, label) {
  let first;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const n = await count();
    const now = performance.now();
    if (n > 0 && first === undefined) first = { n, at: now };
    if (n >= total) {
      const rate = first && now > first.at ? (n - first.n) / ((now - first.at) / 1000) : NaN;
      console.log(`${label}: ${total} entries, ${Math.round(rate).toLocaleString('en')} appends/s`);
      return rate;
    }
    if (Date.now() > deadline) throw new Error(`${label}: only ${n} of ${total} appended`);
    await sleep(100);
  }
}

// --- CPU accounting: where an event's CPU goes, per process (USER_HZ = 100 on Linux) ----
const TICK_MS = 10;
function processCpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime + stime
  } catch {
    return 0;
  }
}
/** The Postgres backends serving `pid`'s connections: its sockets' local ports, as pg_stat_activity sees them. */
async function backendsOf(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const link = (() => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })();
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports = [];
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && inodes.has(f[9]) && f[2]?.endsWith(':1538')) ports.push(parseInt(f[1].split(':')[1], 16));
  }
  if (ports.length === 0) return [];
  const { rows } = await db.query(`SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])`, [ports]);
  return rows.map((r) => r.pid);
}
/** CPU so far of the audit service, its Postgres backends, nats-server and this process (the publishers). */
async function cpuSnapshot() {
  const backends = service ? await backendsOf(service.pid) : [];
  const own = process.cpuUsage();
  return {
    audit: service ? processCpuMs(service.pid) : 0,
    postgres: backends.reduce((sum, pid) => sum + processCpuMs(pid), 0),
    'nats-server': processCpuMs(nats.pid),
    publishers: (own.user + own.system) / 1000,
  };
}
/**
 * The audit service's CPU so far per thread (/proc/<pid>/task): Node names every thread
 * `node`, so the writer is told apart as the main thread (tid = pid) and the decoder, per
 * phase, as the busiest of the others; the rest are V8's GC helpers and libuv's pool.
 */
function threadCpuMs(pid) {
  try {
    return Object.fromEntries(readdirSync(`/proc/${pid}/task`).map((tid) => [tid, processCpuMs(`${pid}/task/${tid}`)]));
  } catch {
    return {};
  }
}
function threadsPerEvent(pid, before, after, events) {
  const delta = (tid) => (after[tid] ?? 0) - (before[tid] ?? 0);
  const others = Object.keys(after)
    .filter((tid) => tid !== String(pid))
    .map(delta)
    .sort((a, b) => b - a);
  const us = (ms) => +((ms / events) * 1000).toFixed(1);
  return {
    writer: us(delta(String(pid))),
    decoder: us(others[0] ?? 0),
    'other threads': us(others.slice(1).reduce((sum, ms) => sum + ms, 0)),
  };
}
const threadReport = {};
const cpuPerEvent = (before, after, events) =>
  Object.fromEntries(Object.keys(after).map((k) => [k, +(((after[k] - before[k]) / events) * 1000).toFixed(1)]));
const cpuReport = {};
async function measured(label, events, phase) {
  const load = loadavg()[0].toFixed(1);
  const before = await cpuSnapshot();
  const threadsBefore = service ? threadCpuMs(service.pid) : {};
  const fromUs = monotonicUs();
  const result = await phase();
  windows.push({ label, fromUs, toUs: monotonicUs() });
  cpuReport[label] = cpuPerEvent(before, await cpuSnapshot(), events);
  console.log(`${label}: CPU µs/event by process (load ${load} at start)`, cpuReport[label]);
  if (service) {
    threadReport[label] = threadsPerEvent(service.pid, threadsBefore, threadCpuMs(service.pid), events);
    console.log(`${label}: audit service CPU µs/event by thread`, threadReport[label]);
  }
  return result;
}

// The publishers' own profile (this process), sampled from here on, cut into the same phases.
const inspector = PROFILE_DIR ? new Session() : undefined;
if (inspector) {
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.start');
}

let service;
try {
  console.log(
    `audit append benchmark: ${N.toLocaleString('en')} events, batch ${BATCH}, Postgres ${new URL(DATABASE_URL).host}, node ${process.version}`,
  );
  const publishRate = await publish(N, 0);
  console.log(
    `pre-load: published ${N} events to AUDIT at ${Math.round(publishRate).toLocaleString('en')}/s (each awaiting its ack, 256 in flight)`,
  );

  service = spawn(process.execPath, [...NODE_ARGS, main], {
    env: {
      ...process.env,
      DATABASE_URL,
      DATABASE_SCHEMA: schema,
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      HTTP_PORT: String(await freePort()),
      MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'),
      AUDIT_BATCH_SIZE: BATCH,
      AUDIT_CHECKPOINT_INTERVAL_MS: '1000',
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', process.env.BENCH_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'],
  });
  // The service's own start is not part of the drain: wait for its first entry before counting CPU.
  while ((await count()) === 0) await sleep(50);
  const backlogRate = await measured('backlog', N, () => waitFor(N, 'backlog drain (consumer alone)'));

  // Steady state: publishing and appending at once, on the same two cores.
  const started = performance.now();
  // Counted while the publishers run, not after: the rate is of appends made alongside them.
  const [liveRate] = await measured('live', N, () =>
    Promise.all([publish(N, N), waitFor(2 * N, 'live (publish + append together)')]),
  );
  const endToEnd = N / ((performance.now() - started) / 1000);
  console.log(
    `live: publishers ${Math.round(liveRate).toLocaleString('en')}/s; end to end ${Math.round(endToEnd).toLocaleString('en')} events/s`,
  );
  // The same, published as the gateway publishes: group commit.
  const groupStarted = performance.now();
  const [groupedPublishRate, groupedRate] = await measured('group commit', N, () =>
    Promise.all([
      publish(N, 2 * N, { grouped: true }),
      waitFor(3 * N, 'live, group commit (publish + append together)'),
    ]),
  );
  const groupedEndToEnd = N / ((performance.now() - groupStarted) / 1000);
  console.log(
    `live, group commit: publishers ${Math.round(groupedPublishRate).toLocaleString('en')}/s; end to end ${Math.round(groupedEndToEnd).toLocaleString('en')} events/s`,
  );
  const { rows } = await db.query(
    `SELECT count(*)::int AS n, max(seq)::int + 1 AS size, (SELECT count(*) FROM ${schema}.checkpoints)::int AS checkpoints FROM ${schema}.audit_entries`,
  );
  console.log(`log: ${rows[0].n} entries, dense to ${rows[0].size}, ${rows[0].checkpoints} signed checkpoints`);
  console.log(
    JSON.stringify({
      bench: 'audit-append',
      events: N,
      batch: Number(BATCH),
      backlogAppendsPerSec: Math.round(backlogRate),
      livePublishPerSec: Math.round(liveRate),
      liveEndToEndPerSec: Math.round(endToEnd),
      groupCommitPublishPerSec: Math.round(groupedPublishRate),
      groupCommitAppendsPerSec: Math.round(groupedRate),
      groupCommitEndToEndPerSec: Math.round(groupedEndToEnd),
      cpuMicrosPerEvent: cpuReport,
      auditThreadCpuMicrosPerEvent: threadReport,
    }),
  );
} finally {
  service?.kill('SIGTERM');
  if (service)
    await new Promise((resolve) => {
      service.once('exit', resolve);
      setTimeout(resolve, 10_000);
    });
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  await db.end();
  await nc.close();
  nats.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
}

if (inspector) {
  const { profile } = await inspector.post('Profiler.stop');
  inspector.disconnect();
  for (const w of windows) {
    const out = join(PROFILE_DIR, `top-publishers-${w.label.replace(/ /g, '-')}.txt`);
    writeFileSync(out, `${selfTimeTable(profile, { ...w, top: 40 })}\n`);
    console.log(`self time, ${w.label}, publishers: ${out}`);
  }
}

// The service wrote one profile per thread as it exited: CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile.
if (PROFILE_DIR && service) {
  const files = readdirSync(PROFILE_DIR).filter(
    (f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(service.pid),
  );
  for (const file of files) {
    const thread = file.split('.')[4] === '0' ? 'writer' : `decoder${file.split('.')[4]}`;
    const profile = JSON.parse(readFileSync(join(PROFILE_DIR, file), 'utf8'));
    for (const w of windows) {
      const out = join(PROFILE_DIR, `top-audit-${w.label.replace(/ /g, '-')}-${thread}.txt`);
      writeFileSync(out, `${selfTimeTable(profile, { ...w, top: 40 })}\n`);
      console.log(`self time, ${w.label}, ${thread} thread: ${out}`);
    }
  }
}
