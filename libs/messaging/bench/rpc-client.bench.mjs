// The gateway's side of a records query's NATS round trip, in CPU per request: RpcClient.request
// on `ps.v1.shard.<n>.query` (encode, headers, span, metrics, nc.request, reply decode) against a
// real local nats-server, answered by a responder in another process (its CPU not counted),
// with the gateway's setup: tracing on with no exporter, metrics bound, a request id in scope.
// Then the codec alone: µs per encode of the request and per decode of the reply and request,
// protobuf-es's generic functions against the contract's hand codec.
//
//   node libs/messaging/bench/rpc-client.bench.mjs                 (needs `pnpm build` of libs/messaging, proto)
//   BENCH_REQUESTS=20000 BENCH_IN_FLIGHT=32 BENCH_MESSAGING_DIST=<dir> node libs/messaging/bench/rpc-client.bench.mjs
//   BENCH_MESSAGING_DIST: another build of this library's dist/ (an older commit's) to compare.
// CPU is process.cpuUsage (user + system) of this process over the timed requests: on a
// shared machine wall time is noise, CPU per request much less so.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createLogger, initTracing, runWithRequestContext } from '@context-gateway/observability';
import { QueryRecordsRequestSchema, QueryRecordsResponseSchema, rpc } from '@context-gateway/proto';
import { connect, headers } from '@nats-io/transport-node';
import { Registry } from 'prom-client';

const here = fileURLToPath(new URL('.', import.meta.url));
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const CODEC_OPS = Number(process.env.BENCH_CODEC_OPS ?? 200_000);
const DIST = resolve(process.env.BENCH_MESSAGING_DIST ?? resolve(here, '../dist'));
const SHARD = 90_000 + (process.pid % 1000); // a shard number no running stack uses

/** A page like the bench's: 8 KB of JSON, a cursor, a sync time. */
function replyBytes() {
  return toBinary(
    QueryRecordsResponseSchema,
    create(QueryRecordsResponseSchema, {
      recordsJson: Buffer.from(
        JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ id: `r${i}`, data: 'x'.repeat(180) }))),
      ),
      nextCursor: 'djE6MTc5NjYxNzczNzEyMzphYmM',
      syncedAt: timestampFromDate(new Date('2026-12-07T04:55:01.234Z')),
    }),
  );
}

/** What the gateway's records route sends. */
const query = {
  orgId: '5b0c7a4e-8f8a-4d6e-9a57-3f2d8a1e4c10',
  applicationId: '0d1e2f30-4152-4637-8899-aabbccddeeff',
  connectionId: '7f3e9a2b-1c4d-4e5f-8a9b-0c1d2e3f4a5b',
  type: '',
  sinceMs: 0n,
  limit: 50,
  cursor: '',
  fields: [],
  policyTypes: [],
};

if (process.argv[2] === 'responder') {
  // The shard's side, as cheap as it gets: the same reply bytes and status header every time.
  const nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
  const body = replyBytes();
  const h = headers();
  h.set('cg-status', 'ok');
  nc.subscribe(rpc.personalServer.shardQuery.shardSubject(Number(process.argv[3])), {
    callback: (_err, msg) => msg.respond(body, { headers: h }),
  });
  await nc.flush();
  process.stdout.write('ready\n');
  await nc.closed();
} else {
  await main();
}

async function main() {
  const { RpcClient, MessagingMetrics, bindMessagingMetrics, connectNats } = await import(
    pathToFileURL(resolve(DIST, 'index.js')).href
  );
  const responder = spawn(process.execPath, [fileURLToPath(import.meta.url), 'responder', String(SHARD)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((ready) => responder.stdout.once('data', ready));
  const tracing = await initTracing({ service: 'bench', exporter: 'none' });
  const nc = await connectNats({ url: NATS_URL, name: 'rpc-client-bench', logger: createLogger({ level: 'warn' }) });
  bindMessagingMetrics(nc, new MessagingMetrics(new Registry()));
  const client = new RpcClient(nc);
  const subject = rpc.personalServer.shardQuery.shardSubject(SHARD);
  const run = async (count) => {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next += 1;
        const page = await runWithRequestContext({ requestId: `req-${next}` }, () =>
          client.request(rpc.personalServer.shardQuery, query, { subject }),
        );
        if (page.recordsJson.length < 8_000) throw new Error('short page');
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  };
  try {
    await run(Math.min(3_000, REQUESTS)); // warm-up: JIT, pools
    const cpu = process.cpuUsage();
    const started = performance.now();
    await run(REQUESTS);
    const used = process.cpuUsage(cpu);
    const wall = performance.now() - started;
    console.log(`dist ${DIST}`);
    console.log(
      `round trips: ${REQUESTS} x ${IN_FLIGHT} in flight; client CPU ${((used.user + used.system) / REQUESTS).toFixed(1)} µs/request ` +
        `(user ${(used.user / REQUESTS).toFixed(1)}, system ${(used.system / REQUESTS).toFixed(1)}); ` +
        `${Math.round((REQUESTS / wall) * 1000)} req/s wall`,
    );
  } finally {
    await nc.close();
    await tracing.shutdown();
    responder.kill();
  }
  codecs();
}

/** µs per call of `fn` over CODEC_OPS calls, CPU time. */
function perOp(fn) {
  for (let i = 0; i < 20_000; i++) fn();
  const cpu = process.cpuUsage();
  for (let i = 0; i < CODEC_OPS; i++) fn();
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) / CODEC_OPS).toFixed(3);
}

function codecs() {
  const d = rpc.personalServer.shardQuery;
  const request = toBinary(QueryRecordsRequestSchema, create(QueryRecordsRequestSchema, query));
  const reply = replyBytes();
  let sink = 0;
  const rows = [
    [
      'encode request',
      () => toBinary(QueryRecordsRequestSchema, create(QueryRecordsRequestSchema, query)).length,
      () => d.encodeRequest(query).length,
    ],
    [
      'decode request',
      () => fromBinary(QueryRecordsRequestSchema, request).limit,
      () => d.decodeRequest(request).limit,
    ],
    [
      'decode reply',
      () => fromBinary(QueryRecordsResponseSchema, reply).recordsJson.length,
      () => d.decodeResponse(reply).recordsJson.length,
    ],
  ];
  for (const [name, generic, hand] of rows) {
    console.log(
      `${name}: protobuf-es ${perOp(() => (sink += generic()))} µs, hand ${perOp(() => (sink += hand()))} µs`,
    );
  }
  if (sink === 0) throw new Error('nothing measured');
}
