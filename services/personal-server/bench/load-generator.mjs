// The query benchmark's load generator, in a process of its own (so its CPU is not the
// server's and it is not slowed by the bench's own bookkeeping). Started by query.bench.mjs
// with one JSON argument; prints one JSON line with what it measured.
//
// Two modes:
// - closed: CONNECTIONS clients each send the next request when the answer to the last one
//   came (autocannon). Gives the maximum rate; its latencies hide queueing, because a slow
//   answer also delays the requests that would have come meanwhile (coordinated omission).
// - open: requests start on a fixed schedule (RATE per second) whatever the answers do, and
//   each latency is measured from the moment the request was DUE, not from when a free
//   socket let it go. A server that falls behind shows it in p99, as users would see it.
import http from 'node:http';

import autocannon from 'autocannon';

const config = JSON.parse(process.argv[2] ?? '{}');
const { url, paths, headers = {}, mode, seconds, connections, rate } = config;
if (!url || !Array.isArray(paths) || paths.length === 0 || !['closed', 'open'].includes(mode))
  throw new Error('usage: load-generator.mjs {"url","paths":[...],"mode":"closed"|"open","seconds",...}');

const cpu0 = process.cpuUsage();
const result = mode === 'closed' ? await closedLoop() : await openLoop();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ ...result, generatorCpuMs: (cpu.user + cpu.system) / 1000 })}\n`);

async function closedLoop() {
  let i = 0;
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    headers,
    requests: [{ setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] }) }],
  });
  return {
    ok: r['2xx'],
    failed: r.non2xx + r.errors + r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
  };
}

async function openLoop() {
  const target = new URL(url);
  // Enough sockets that the client never queues at a steady rate: the schedule, not a free socket, starts a request.
  const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(64, connections ?? 0) });
  const interval = 1000 / rate;
  const total = Math.floor(rate * seconds);
  const latencies = [];
  let ok = 0;
  let failed = 0;
  let late = 0;
  const start = performance.now();
  const inFlight = new Set();
  for (let n = 0; n < total; n += 1) {
    const due = start + n * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    else if (wait < -interval) late += 1; // the generator itself fell behind the schedule
    const request = send(agent, target, paths[n % paths.length], headers).then(
      (status) => {
        latencies.push(performance.now() - due);
        if (status >= 200 && status < 300) ok += 1;
        else failed += 1;
      },
      () => {
        latencies.push(performance.now() - due);
        failed += 1;
      },
    );
    inFlight.add(request);
    request.finally(() => inFlight.delete(request));
  }
  await Promise.all(inFlight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q) => +(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN).toFixed(1);
  return { ok, failed, p50: at(0.5), p99: at(0.99), max: at(1), scheduled: total, lateStarts: late };
}

function send(agent, target, path, extraHeaders) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: target.hostname, port: target.port, path, method: 'GET', headers: extraHeaders },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
