// What the query benchmark's open-loop client costs: the CPU per request of load-generator.mjs
// (its own process.cpuUsage, from after its imports to the end of its run), against a trivial
// node:http server in this process (answers after 2 ms with a JSON body the size of a
// 20-record page), at BENCH_RATE requests/s for BENCH_SECONDS, BENCH_ROUNDS rounds.
//
//   node services/personal-server/bench/generator-cost.bench.mjs [generator.mjs ...]
//
// With several generator files (an older load-generator.mjs from git show, put in this
// directory so its imports resolve), each round runs them in turn, so the machine's load
// falls on each alike. The CPU is the generator's only; the server's is not counted.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const RATE = Number(process.env.BENCH_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const generators =
  process.argv.length > 2
    ? process.argv.slice(2).map((file) => resolve(file))
    : [fileURLToPath(new URL('load-generator.mjs', import.meta.url))];

const body = JSON.stringify({
  records: Array.from({ length: 20 }, (_, i) => ({
    id: `rec_${String(i).padStart(20, '0')}`,
    type: 'media.playlist',
    payload: { name: `playlist ${i}`, tracks: Array.from({ length: 4 }, (_, t) => `track-${i}-${t}`) },
  })),
  nextCursor: null,
});
const server = http.createServer((req, res) => {
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }, 2);
});
await new Promise((ready) => server.listen(0, '127.0.0.1', ready));
const url = `http://127.0.0.1:${server.address().port}`;

function run(generator) {
  return new Promise((done, fail) => {
    const config = { url, paths: ['/records'], mode: 'open', seconds: SECONDS, rate: RATE };
    const child = spawn(process.execPath, [generator, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('error', fail);
    child.once('exit', (code) =>
      code === 0 ? done(JSON.parse(out.trim().split('\n').pop())) : fail(new Error(`${generator} exited ${code}`)),
    );
  });
}

const rows = [];
try {
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const generator of generators) {
      const load = loadavg()[0];
      const result = await run(generator);
      rows.push({
        round,
        generator: generator.split('/').pop(),
        'CPU ms/request': +(result.generatorCpuMs / result.ok).toFixed(3),
        ok: result.ok,
        failed: result.failed,
        'p99 ms': result.p99,
        'load avg (1 min) at start': +load.toFixed(1),
      });
    }
  }
} finally {
  server.close();
}
console.log(`load generator CPU per request, open loop at ${RATE}/s for ${SECONDS} s (${body.length}-byte answers)`);
console.table(rows);
