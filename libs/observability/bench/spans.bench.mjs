#!/usr/bin/env node
// @ts-check
// CPU per records query of the spans the query path begins, with tracing initialised as the
// services run it by default (exporter `none`: nothing records, ids still propagate)
// (docs/perf/README.md, "Unrecorded spans without the SDK's tracer"). One "query" here is
// what the gateway and a shard do with spans per records query:
// - the gateway's HTTP edge: the incoming headers read for a trace (none), a SERVER span begun
//   with its two attributes, entered with the request context (service-kit request-tracing);
// - the gateway's RPC client: a CLIENT span (withSpan) and its trace headers written;
// - the shard's RPC server: those headers read back, a SERVER span begun under them
//   (startActiveSpan, as NatsRpcServer does).
// Each build runs in a fresh child process per round (process.cpuUsage: user + system, GC
// included), the builds alternating within each round.
//
//   node libs/observability/bench/spans.bench.mjs [<observability dist dir> …]
//
// Each dist dir (default: dist) is a build of libs/observability, a path relative to this
// package's dir (libs/observability) from whatever cwd the bench is run. To compare two, copy
// one build aside inside this package so that it resolves the same dependencies (in
// libs/observability: `mkdir -p .baseline && cp -r /work/base/libs/observability/dist
// .baseline/dist`: git ignores any dist/), and pass both, e.g. from the repo root
// `ROUNDS=5 node libs/observability/bench/spans.bench.mjs .baseline/dist dist`.
// ROUNDS (default 3), QUERIES per measurement (default 100000).
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const QUERIES = Number(process.env.QUERIES ?? 100_000);
const here = fileURLToPath(new URL('..', import.meta.url));

if (process.argv[2] === '--child') {
  const lib = await import(pathToFileURL(resolve(process.argv[3], 'index.js')).href);
  const { SpanKind, trace, context } = await import('@opentelemetry/api');
  const handle = await lib.initTracing({ service: 'bench', exporter: 'none' });
  const none = () => undefined;
  const serverSpan = { kind: SpanKind.SERVER };
  const query = (i) => {
    // Gateway HTTP edge.
    const parent = lib.extractTraceContext(none);
    const route = '/v1/connections/:id/records';
    const span = lib.tracer().startSpan(`GET ${route}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'http.route': route },
    });
    return lib.runWithRequestContext({ requestId: `r${i}` }, () =>
      context.with(trace.setSpan(parent, span), () => {
        // Gateway RPC client, then the shard's server span under its headers.
        const headers = new Map();
        void lib.withSpan(
          'rpc ps.v1.shard.0.query',
          { kind: SpanKind.CLIENT, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': 's' } },
          () => lib.injectTraceHeaders((k, v) => headers.set(k, v)),
        );
        const remote = lib.extractTraceContext((k) => headers.get(k));
        lib.tracer().startActiveSpan('rpc ps.v1.shard.0.query', serverSpan, remote, (s) => s.end());
        span.end();
      }),
    );
  };
  for (let i = 0; i < QUERIES / 10; i += 1) query(i); // warm-up
  await new Promise((r) => setImmediate(r));
  const start = process.cpuUsage();
  for (let i = 0; i < QUERIES; i += 1) query(i);
  await new Promise((r) => setImmediate(r));
  const used = process.cpuUsage(start);
  await handle.shutdown();
  process.stdout.write(String(((used.user + used.system) / QUERIES) * 1000));
} else {
  const dists = (process.argv.length > 2 ? process.argv.slice(2) : ['dist']).map((d) => resolve(here, d));
  const figures = new Map(dists.map((d) => [d, []]));
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const dist of dists) {
      const ns = Number(
        execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dist], {
          cwd: here,
          env: { ...process.env, QUERIES: String(QUERIES) },
        }),
      );
      figures.get(dist)?.push(ns);
      console.log(`round ${round} ${dist}: ${(ns / 1000).toFixed(2)} µs CPU per query`);
    }
  }
  for (const [dist, ns] of figures) {
    const sorted = [...ns].sort((a, b) => a - b);
    console.log(`${dist}: median ${(sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2)} µs per query`);
  }
}
