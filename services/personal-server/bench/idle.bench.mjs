// node services/personal-server/bench/idle.bench.mjs — what each service costs doing nothing.
//
// Starts the whole stack as `pnpm bench:query` does (fresh database, private nats-server, two
// personal-server shards), lets it settle for IDLE_WARMUP_SECONDS, then for IDLE_MINUTES
// windows of IDLE_WINDOW_SECONDS each (default 60) reads, per process, its CPU time
// (/proc/<pid>/stat utime + stime, every thread: /proc/<pid>/schedstat is the main thread's
// alone and read 0 for nats-server; other processes' load cannot inflate it much) and its
// write system calls (/proc/<pid>/io syscw), and prints each window, the median and the
// spread (min–max), every figure scaled to one minute whatever the window's length (a
// shorter window is quicker but sees fewer of the 5 s sweeps and ticks, so it is noisier).
//
//   IDLE_MINUTES=5 IDLE_WARMUP_SECONDS=30 IDLE_WINDOW_SECONDS=60 node services/personal-server/bench/idle.bench.mjs
//
// IDLE_PIDS_FILE=<file>: the pids (name → pid) are written there once the stack is up, for
// strace -p or perf alongside; IDLE_HOLD_SECONDS keeps the stack up that long after the
// measured minutes (so a tracer's own cost stays out of them). STACK_NODE_ARGS / STACK_BUNDLE reach the services (e.g.
// `--cpu-prof --cpu-prof-dir=<dir>` with STACK_BUNDLE=0 for a profile of the idle minutes).
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';

import { natsServerPids, processTicksMs, startBenchStack, writeCalls } from './bench-stack.mjs';

const MINUTES = Number(process.env.IDLE_MINUTES ?? 5);
const WARMUP_S = Number(process.env.IDLE_WARMUP_SECONDS ?? 30);
const HOLD_S = Number(process.env.IDLE_HOLD_SECONDS ?? 0);
const WINDOW_MS = Number(process.env.IDLE_WINDOW_SECONDS ?? 60) * 1_000;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const bench = await startBenchStack('idle', { SHARD_COUNT: '2', DATABASE_POOL_MAX: '10' });
try {
  const { stack } = bench;
  const named = Object.fromEntries(Object.entries(stack.processes).map(([name, p]) => [name, p.child.pid]));
  stack.shards.forEach((p, i) => (named[`personal-server#${i + 1}`] = p.child.pid));
  natsServerPids(bench.natsUrl).forEach((pid, i) => (named[i === 0 ? 'nats-server' : `nats-server#${i}`] = pid));
  if (process.env.IDLE_PIDS_FILE) writeFileSync(process.env.IDLE_PIDS_FILE, `${JSON.stringify(named)}\n`);
  console.log(`pids: ${JSON.stringify(named)}`);
  // The probe connection is the bench's, not a service's: close it so it adds no PINGs.
  await bench.nc.drain();
  await sleep(WARMUP_S * 1_000);
  const cpu = Object.fromEntries(Object.keys(named).map((n) => [n, []]));
  const writes = Object.fromEntries(Object.keys(named).map((n) => [n, []]));
  for (let m = 0; m < MINUTES; m++) {
    const before = Object.fromEntries(
      Object.entries(named).map(([n, pid]) => [n, [processTicksMs(pid) ?? NaN, writeCalls(pid)]]),
    );
    const started = performance.now();
    await sleep(WINDOW_MS);
    const perMinute = 60_000 / (performance.now() - started);
    const row = [];
    for (const [n, pid] of Object.entries(named)) {
      const ms = ((processTicksMs(pid) ?? NaN) - before[n][0]) * perMinute;
      const w = (writeCalls(pid) - before[n][1]) * perMinute;
      cpu[n].push(ms);
      writes[n].push(w);
      row.push(`${n} ${ms.toFixed(1)} ms/${w.toFixed(0)} w`);
    }
    console.log(`minute ${m + 1} (load ${loadavg()[0].toFixed(1)}): ${row.join(' | ')}`);
  }
  console.log('\nper idle minute: CPU ms median (min–max) | write syscalls median (min–max)');
  for (const n of Object.keys(named)) {
    const c = cpu[n];
    const w = writes[n];
    console.log(
      `  ${n.padEnd(20)} ${median(c).toFixed(1).padStart(7)} (${Math.min(...c).toFixed(1)}–${Math.max(...c).toFixed(1)}) | ` +
        `${median(w).toFixed(0).padStart(5)} (${Math.min(...w).toFixed(0)}–${Math.max(...w).toFixed(0)})`,
    );
  }
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  if (HOLD_S > 0) {
    console.log(`holding the stack up for ${HOLD_S} s (strace, perf)…`);
    await sleep(HOLD_S * 1_000);
  }
} finally {
  await bench.stop();
}
