#!/usr/bin/env node
// @ts-check
// The server side of one RPC: the CPU per request that NatsRpcServer and Nest's handler
// invocation cost in the answering process, around a handler that does nothing
// (docs/perf/README.md, "The shard's RPC server"). The contract is shaped like the shard's
// query (QueryRecordsRequest, validated by the catalog's rule; an 8 KB pre-encoded reply) and
// served the way a service serves it (Nest microservice, the global RPC exception filter,
// metrics bound to the connection, tracing initialised with no exporter); requests carry the
// headers the gateway's RpcClient sends (request id, deadline, an unsampled traceparent).
// Two figures, each from a fresh child process per build and round (process.cpuUsage: user +
// system, GC included):
//
// - in process: the server's subscription callback is handed messages directly, with a
//   connection that only records what would be published (headers encoded, as nats.js does):
//   the server's own work with no socket, steady enough to compare builds on a busy machine;
// - through NATS: a real connection to the nats-server on 127.0.0.1:4222, this process sending
//   IN_FLIGHT requests at a time; the child's CPU includes the client library and the socket
//   writes, and moves with the machine's load (replies batch differently).
//
//   node libs/messaging/bench/rpc-server.bench.mjs [<messaging dist dir> …]
//
// Each dist dir (default: this package's dist/) is a build of libs/messaging; to compare two,
// copy one build aside inside this package, so that it resolves the same dependencies
// (`cp -r dist .baseline/dist`: git ignores it, as any dist/), and pass both: they alternate
// within each round.
// ROUNDS (default 2), REQUESTS per measurement (default 20000), IN_FLIGHT (default 16),
// REPLY_BYTES (default 8000), MODES (default `inproc,nats`), BENCH_PROFILE_DIR (each child runs
// with --cpu-prof into that folder; the measured window is printed for scripts/flamegraph.mjs).
import 'reflect-metadata';

import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { create, toBinary } from '@bufbuild/protobuf';
import { createLogger, initTracing } from '@context-gateway/observability';
import { QueryRecordsRequestSchema, QueryRecordsResponseSchema, rpc } from '@context-gateway/proto';
import { connect, headers, MsgHdrsImpl } from '@nats-io/transport-node';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import { Registry } from 'prom-client';

const int = (/** @type {string} */ name, /** @type {number} */ fallback) => Number(process.env[name] ?? fallback);
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const ROUNDS = int('ROUNDS', 2);
const REQUESTS = int('REQUESTS', 20_000);
const WARM_UP = Math.max(2_000, REQUESTS / 4);
const IN_FLIGHT = int('IN_FLIGHT', 16);
const REPLY_BYTES = int('REPLY_BYTES', 8_000);
const MODES = (process.env.MODES ?? 'inproc,nats').split(',');
const SHARD = 0;
const TRACE_ID = randomBytes(16).toString('hex');

/** The contract under test: the shard query's descriptor as it is, on subjects of this run only. */
function contract(/** @type {string} */ prefix) {
  const shardSubject = (/** @type {number} */ shard) => `${prefix}.v1.shard.${shard}.query`;
  return { ...rpc.personalServer.shardQuery, subject: shardSubject(0), shardSubject };
}

const requestBody = toBinary(
  QueryRecordsRequestSchema,
  create(QueryRecordsRequestSchema, {
    orgId: randomUUID(),
    applicationId: randomUUID(),
    connectionId: randomUUID(),
    type: 'media.playlist',
    limit: 20,
  }),
);

/** The headers the gateway's RpcClient sends with request `n`. */
function requestHeaders(/** @type {number} */ n) {
  const h = headers();
  h.set('cg-deadline', String(Date.now() + 60_000));
  h.set('cg-request-id', `bench-${n}`);
  // Unsampled, as the gateway's are with no exporter (libs/observability initTracing).
  h.set('traceparent', `00-${TRACE_ID}-${randomBytes(8).toString('hex')}-00`);
  return h;
}

if (process.argv[2] === '--serve') await serve(process.argv[3], process.argv[4], process.argv[5]);
else await drive(process.argv.slice(2));

/**
 * Child: serves the contract with the NatsRpcServer of `dist`; `mode` inproc drives itself and
 * reports, nats reports its CPU when the parent says start and stop.
 */
async function serve(/** @type {string} */ dist, /** @type {string} */ mode, /** @type {string} */ prefix) {
  const messaging = await import(pathToFileURL(resolve(dist, 'index.js')).href);
  const descriptor = contract(prefix);
  const reply = toBinary(
    QueryRecordsResponseSchema,
    create(QueryRecordsResponseSchema, { recordsJson: randomBytes(REPLY_BYTES), nextCursor: 'c'.repeat(40) }),
  );
  class QueryHandler {
    async query() {
      return new messaging.EncodedReply(QueryRecordsResponseSchema, reply);
    }
  }
  // The decorators a TypeScript handler carries (records.handler.ts), applied by hand.
  const method = /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(QueryHandler.prototype, 'query'));
  messaging.RpcHandler(descriptor)(QueryHandler.prototype, 'query', method);
  Payload()(QueryHandler.prototype, 'query', 0);
  Controller()(QueryHandler);
  class BenchModule {}
  Module({ controllers: [QueryHandler] })(BenchModule);

  await initTracing({ service: 'rpc-server-bench', exporter: 'none' });
  const logger = createLogger({ service: 'rpc-server-bench', level: 'info' });
  const fake = mode === 'inproc' ? fakeConnection() : undefined;
  const nc = fake ?? (await connect({ servers: NATS_URL }));
  messaging.bindMessagingMetrics(nc, new messaging.MessagingMetrics(new Registry()));
  const app = await NestFactory.createMicroservice(BenchModule, {
    strategy: new messaging.NatsRpcServer({ connection: nc, queue: prefix, logger, shard: SHARD }),
    logger: false,
  });
  app.useGlobalFilters(new messaging.RpcErrorPassthroughFilter());
  await app.listen();

  let cpu0 = process.cpuUsage();
  /** Start of the measured window on V8's profiler clock (process.hrtime, µs), for flamegraph.mjs --from-us. */
  let fromUs = 0;
  const start = () => {
    cpu0 = process.cpuUsage();
    fromUs = Number(process.hrtime.bigint() / 1000n);
  };
  const stop = () => {
    const cpu = process.cpuUsage(cpu0);
    return {
      cpuUs: cpu.user + cpu.system,
      systemUs: cpu.system,
      fromUs,
      toUs: Number(process.hrtime.bigint() / 1000n),
    };
  };

  if (fake) {
    const subject = descriptor.shardSubject?.(SHARD) ?? '';
    await fake.drive(subject, fake.prepare(WARM_UP));
    // Made before the clock starts: the sender's work is not the server's.
    const requests = fake.prepare(REQUESTS);
    start();
    const failed = await fake.drive(subject, requests);
    const result = { ...stop(), failed };
    await app.close();
    process.send?.(result);
    process.exit(0);
  }
  const real = /** @type {import('@nats-io/transport-node').NatsConnection} */ (nc);
  await real.flush();
  process.on('message', (/** @type {string} */ command) => {
    if (command === 'start') {
      start();
      process.send?.({ started: true });
    } else if (command === 'stop') process.send?.(stop());
    else if (command === 'exit') void app.close().then(() => real.drain().then(() => process.exit(0)));
  });
  process.send?.({ ready: true });
}

/**
 * A connection with nothing behind it: subscribe keeps the callback, and `drive` hands it
 * messages shaped as nats.js delivers them (headers decoded from their bytes on first read),
 * IN_FLIGHT at a time; a reply's headers are encoded as nats.js does when it publishes.
 */
function fakeConnection() {
  /** @type {Map<string, (error: Error | null, msg: unknown) => void>} */
  const callbacks = new Map();
  return {
    subscribe(
      /** @type {string} */ subject,
      /** @type {{ callback: (error: Error | null, msg: unknown) => void }} */ opts,
    ) {
      callbacks.set(subject, opts.callback);
      return { drain: async () => undefined };
    },
    /** The header bytes of `count` requests. */
    prepare(/** @type {number} */ count) {
      return Array.from({ length: count }, (_, n) => requestHeaders(n).encode());
    },
    /** Sends a request per entry of `headerBytes`; resolves with how many were answered other than ok. */
    async drive(/** @type {string} */ subject, /** @type {Uint8Array[]} */ headerBytes) {
      const callback = callbacks.get(subject);
      if (!callback) throw new Error(`nothing subscribed ${subject}`);
      const count = headerBytes.length;
      const okHeaders = headers();
      okHeaders.set('cg-status', 'ok');
      const ok = okHeaders.encode();
      let failed = 0;
      for (let sent = 0; sent < count;) {
        const batch = Math.min(IN_FLIGHT, count - sent);
        await new Promise((done) => {
          let answered = 0;
          for (let i = 0; i < batch; i++, sent++) {
            const bytes = headerBytes[sent];
            /** @type {MsgHdrsImpl | undefined} */
            let decoded;
            callback(null, {
              subject,
              reply: `_INBOX.bench.${sent}`,
              data: requestBody,
              get headers() {
                return (decoded ??= MsgHdrsImpl.decode(bytes));
              },
              respond(/** @type {Uint8Array} */ _body, /** @type {{ headers?: MsgHdrsImpl }} */ options) {
                const sentHeaders = options.headers?.encode();
                if (!sentHeaders || Buffer.compare(sentHeaders, ok) !== 0) failed += 1;
                if (++answered === batch) done(undefined);
                return true;
              },
            });
          }
        });
      }
      return failed;
    },
  };
}

/** Parent: for each round, mode and dist, a fresh child; warm-up, then REQUESTS measured. */
async function drive(/** @type {string[]} */ dists) {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const builds = (dists.length > 0 ? dists : [resolve(here, '../dist')]).map((d) => resolve(d));
  const nc = MODES.includes('nats') ? await connect({ servers: NATS_URL }) : undefined;

  /** Sends `count` requests through NATS, IN_FLIGHT at a time; resolves with how many were not ok. */
  async function load(/** @type {string} */ subject, /** @type {number} */ count) {
    if (!nc) throw new Error('no connection');
    let sent = 0;
    let failed = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (sent < count) {
          sent += 1;
          const answer = await nc.request(subject, requestBody, { timeout: 5_000, headers: requestHeaders(sent) });
          if (answer.headers?.get('cg-status') !== 'ok') failed += 1;
        }
      }),
    );
    return failed;
  }

  /** @param {string} dist @param {string} mode */
  async function measure(dist, mode) {
    const prefix = `bench${randomUUID().slice(0, 8)}`;
    const child = fork(fileURLToPath(import.meta.url), ['--serve', dist, mode, prefix], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: process.env.BENCH_PROFILE_DIR
        ? ['--cpu-prof', '--cpu-prof-interval=200', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
        : [],
    });
    const exited = new Promise((done) => child.once('exit', done));
    /** @type {(predicate: (m: any) => boolean) => Promise<any>} */
    const next = (predicate) =>
      new Promise((done, fail) => {
        const on = (/** @type {any} */ m) => {
          if (!predicate(m)) return;
          child.off('message', on);
          done(m);
        };
        child.on('message', on);
        void exited.then(() => fail(new Error(`the ${mode} server (pid ${child.pid}) exited`)));
      });
    if (mode === 'inproc') {
      const result = await next((m) => m.cpuUs !== undefined);
      await exited;
      return { ...result, pid: child.pid };
    }
    await next((m) => m.ready);
    const subject = contract(prefix).shardSubject?.(SHARD) ?? '';
    await load(subject, WARM_UP); // JIT, pools, prom-client series
    child.send('start');
    await next((m) => m.started);
    const failed = await load(subject, REQUESTS);
    child.send('stop');
    const result = await next((m) => m.cpuUs !== undefined);
    child.send('exit');
    await exited;
    return { ...result, failed, pid: child.pid };
  }

  console.log(
    `load avg ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; ${REQUESTS} requests per figure, ${IN_FLIGHT} in flight, ${REPLY_BYTES} B replies`,
  );
  /** @type {Map<string, number[]>} */
  const results = new Map();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      for (const dist of builds) {
        const { cpuUs, systemUs, failed, pid, fromUs, toUs } = await measure(dist, mode);
        const perRequest = cpuUs / REQUESTS;
        const key = `${mode.padEnd(6)} ${dist}`;
        results.set(key, [...(results.get(key) ?? []), perRequest]);
        console.log(
          `round ${round}  ${key}: ${perRequest.toFixed(1)} CPU µs/request (${(systemUs / REQUESTS).toFixed(1)} system)` +
            (failed ? `, ${failed} NOT OK` : '') +
            (process.env.BENCH_PROFILE_DIR ? `  [pid ${pid} --from-us ${fromUs} --to-us ${toUs}]` : ''),
        );
      }
    }
  }
  for (const [key, values] of results) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(
      `${key}: min ${sorted[0]?.toFixed(1)}  median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} CPU µs/request`,
    );
  }
  await nc?.drain();
}
