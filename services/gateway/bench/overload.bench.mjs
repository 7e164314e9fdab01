// pnpm bench:overload — the gateway with more load than the machine serves (docs/reliability.md).
//
// Starts identity, policy and gateway from dist (run `pnpm build` first) on a fresh database
// of the local Postgres and a private nats-server, twice:
//   - "shedding on": SHED_MAX_IN_FLIGHT=BENCH_MAX_IN_FLIGHT (64), rate limits on, the per-key
//     limit BENCH_PER_KEY (3000) per 10 s window;
//   - "shedding off": no in-flight cap, no rate limits (what the gateway did before).
// Each phase sends POST /v1/policy/explain (API key check at identity + a policy decision)
// from N concurrent clients for BENCH_SECONDS (5) and prints the rate of served answers (the
// whole path ran; the bench's user holds no grant, so explain answers 404), p50/p99 of those
// and of the refusals, whether every 429/503 had Retry-After,
// and the gateway's peak RSS. The load generator shares the machine's cores.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describeEntries } from '../../../scripts/bundle/bundle-files.mjs';
import { benchOrgWithApp, operatorApi, startGatewayBench } from '../../../scripts/stack/gateway-bench.mjs';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const MAX_IN_FLIGHT = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 64);
const PER_KEY = Number(process.env.BENCH_PER_KEY ?? 3000);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '8,64,512').split(',').map(Number);
const OPERATOR_TOKEN = `bench-operator-${randomUUID()}`;

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0);
const ms = (n) => n.toFixed(1);
const rssMiB = (pid) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return line ? Number(line[1]) / 1024 : 0;
};

/** `clients` concurrent loops for `seconds`, each request with `token`; answers by status. */
async function phase(url, token, body, clients, seconds, pid) {
  const byStatus = new Map();
  const okLatency = [];
  const refusedLatency = [];
  let missingRetryAfter = 0;
  let firstOther = '';
  let peakRss = rssMiB(pid);
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMiB(pid))), 200);
  const deadline = performance.now() + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      let status;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        status = res.status;
        if ((status === 429 || status === 503) && !res.headers.get('retry-after')) missingRetryAfter += 1;
        const text = await res.text();
        if (status >= 500 && status !== 503 && !firstOther) firstOther = `${status} ${text.slice(0, 300)}`;
      } catch {
        status = 0;
      }
      const took = performance.now() - t0;
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      // Served: the request went the whole way (API key at identity, the decision) and got
      // its answer — here a 404, the bench's user holds no grant; refused: 429/503; failed: 5xx or none.
      const served = status > 0 && status < 500 && status !== 429;
      (served ? okLatency : refusedLatency).push(took);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, loop));
  const elapsed = (performance.now() - started) / 1000;
  clearInterval(sampler);
  if (firstOther) console.log(`  (${clients} clients) first unexpected answer: ${firstOther}`);
  okLatency.sort((a, b) => a - b);
  refusedLatency.sort((a, b) => a - b);
  return {
    clients,
    'served/s': Math.round(okLatency.length / elapsed),
    'served p50 ms': ms(pct(okLatency, 0.5)),
    'served p99 ms': ms(pct(okLatency, 0.99)),
    429: byStatus.get(429) ?? 0,
    503: byStatus.get(503) ?? 0,
    'refused p99 ms': ms(pct(refusedLatency, 0.99)),
    'failed (5xx/none)': [...byStatus]
      .filter(([s]) => s === 0 || (s >= 500 && s !== 503))
      .reduce((n, [, c]) => n + c, 0),
    'no Retry-After': missingRetryAfter,
    'peak RSS MiB': Math.round(peakRss),
  };
}

async function run(label, env) {
  const bench = await startGatewayBench({ rootDir: ROOT, name: 'overload', env: { OPERATOR_TOKEN, ...env } });
  const { stack } = bench;
  try {
    console.log(describeEntries(stack.entries));
    const gatewayUrl = stack.urls.gateway;
    const call = operatorApi(gatewayUrl, OPERATOR_TOKEN);
    const { app } = await benchOrgWithApp(call, 'github', ['github:read:repos']);
    const body = JSON.stringify({ applicationId: app.id, userId: randomUUID(), capability: 'github:read:repos' });
    const url = `${gatewayUrl}/v1/policy/explain`;
    const pid = stack.processes.gateway.child.pid;
    const rows = [];
    // One key per phase, so that one phase's count does not carry into the next.
    const newKey = async () => (await call('POST', `/v1/admin/applications/${app.id}/api-keys`)).secret;
    await phase(url, await newKey(), body, 8, 1, pid); // warm-up
    for (const clients of CLIENTS) rows.push(await phase(url, await newKey(), body, clients, SECONDS, pid));
    console.log(`\n${label}`);
    console.table(rows);
  } finally {
    await bench.stop();
  }
}

console.log(
  `gateway overload: POST /v1/policy/explain, ${SECONDS} s per phase, clients ${CLIENTS.join(' / ')}; ` +
    `per-key limit ${PER_KEY} per 10 s (= ${PER_KEY / 10}/s) when on`,
);
await run(`shedding on (SHED_MAX_IN_FLIGHT=${MAX_IN_FLIGHT}), rate limits on`, {
  SHED_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
  RATE_LIMIT_WINDOW_SECONDS: '10',
  RATE_LIMIT_PER_KEY: String(PER_KEY),
});
await run('shedding off, rate limits off', {
  SHED_MAX_IN_FLIGHT: '0',
  SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
  SHED_MAX_HEAP_MIB: '0',
  RATE_LIMIT_PER_KEY: '0',
  RATE_LIMIT_PER_IP: '0',
});
