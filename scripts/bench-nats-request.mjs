#!/usr/bin/env node
// @ts-check
// CPU per NATS request/reply with the client a checkout installed (docs/perf/README.md,
// "Checked again: no regression from the patch"): responder and requester in this process,
// 2 KB each way, against the nats-server on 127.0.0.1:4222; 1 and 50 requests in flight.
// CPU time (process.cpuUsage), not rates, is the figure to compare on a shared machine.
//
//   node scripts/bench-nats-request.mjs [checkout]   # default: this one; run alternately per checkout
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const checkout = resolve(process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url)));
// The client as the services load it (libs/messaging's dependency, patched or not).
const { connect } = createRequire(`${checkout}/libs/messaging/package.json`)('@nats-io/transport-node');
const server = await connect({ servers: '127.0.0.1:4222' });
const client = await connect({ servers: '127.0.0.1:4222' });
const subject = `bench.nats-request.${process.pid}`;
const payload = new Uint8Array(2000);
server.subscribe(subject, { callback: (_error, msg) => msg.respond(payload) });
await server.flush();

/** @param {number} inFlight @param {number} total */
async function run(inFlight, total) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        next += 1;
        await client.request(subject, payload, { timeout: 5000 });
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return {
    inFlight,
    'CPU µs/request': +((cpu.user + cpu.system) / total).toFixed(1),
    'requests/s': Math.round((total / (performance.now() - t0)) * 1000),
  };
}

await run(50, 3000); // warm-up
const results = [await run(1, 3000), await run(50, 15000)];
console.log(JSON.stringify({ checkout, 'load avg (1 min)': +loadavg()[0].toFixed(1), results }));
await client.close();
await server.close();
