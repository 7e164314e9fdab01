// What one prom-client call costs on the RPC server's path: `inc` of the requests counter
// (subject + outcome labels) and `observe` of the duration histogram (subject label), as
// NatsRpcServer makes them once per message, in CPU µs per call (process.cpuUsage, so a busy
// machine's wall time does not count). The first round warms the JIT up; read the later ones.
//
//   node libs/messaging/bench/metrics-calls.bench.mjs        (CALLS per measurement, default 1000000; ROUNDS, default 3)
import { Counter, Histogram, Registry } from 'prom-client';

const CALLS = Number(process.env.CALLS ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const registry = new Registry();
const requests = new Counter({
  name: 'requests',
  help: 'r',
  labelNames: ['subject', 'outcome'],
  registers: [registry],
});
const duration = new Histogram({ name: 'duration', help: 'd', labelNames: ['subject'], registers: [registry] });

/** CPU µs per call of `step`, over CALLS calls. */
function perCall(/** @type {(i: number) => void} */ step) {
  const start = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) step(i);
  const used = process.cpuUsage(start);
  return ((used.user + used.system) / CALLS).toFixed(3);
}

for (let round = 1; round <= ROUNDS; round++) {
  const inc = perCall(() => requests.inc({ subject: 'ps.v1.shard.*.query', outcome: 'ok' }));
  const observe = perCall((i) => duration.observe({ subject: 'ps.v1.shard.*.query' }, (i % 100) / 10_000));
  console.log(`round ${round}: inc ${inc} µs, observe ${observe} µs per call`);
}
