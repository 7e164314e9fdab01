// pnpm bench:audit (part 2): what recording an audit event adds to a request. The same
// handler behind two routes of a real Nest/Fastify gateway app (built dist/): one plain,
// one with `audit: { action: 'data_query' }`, whose AuditRouteInterceptor publishes the
// event to a file-storage JetStream AUDIT stream and waits for its ack before answering.
//
//   BENCH_REQUESTS=3000 node services/gateway/bench/audit-latency.bench.mjs
import 'reflect-metadata';
import { connectNats, ensureStreams } from '@context-gateway/messaging';
import { createLogger } from '@context-gateway/observability';
import { streams } from '@context-gateway/proto';
import { NATS_CONNECTION, SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Global, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url);
if (!existsSync(new URL('audit/audit.module.js', dist))) {
  console.error('services/gateway is not built: run `pnpm build` first');
  process.exit(1);
}
const { AuditModule } = await import(new URL('audit/audit.module.js', dist).href);
const { setAuditSubject } = await import(new URL('audit/audit-subject.js', dist).href);
const { Route } = await import(new URL('http/route.decorator.js', dist).href);

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-audit-latency-'));
const natsPort = await freePort();
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(scratch, 'nats')], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
await sleep(500);
const logger = createLogger({ service: 'bench', level: 'silent' });
const nc = await connectNats({ url: `nats://127.0.0.1:${natsPort}`, name: 'bench-audit-latency', logger, bootTimeoutMs: 5_000 });
await ensureStreams(nc, [streams.audit], logger);

const ORG = '0b0e6a3c-1111-4a7b-9c55-0d6f3f9c2a11';
class BenchController {
  plain() {
    return { rows: 1 };
  }
  audited(request) {
    setAuditSubject(request, { orgId: ORG, userId: 'user-1', integration: 'github', actorKind: 'api_key', actorId: 'key-1' });
    return { rows: 1 };
  }
}
const common = { method: 'GET', summary: 'bench', tags: ['bench'], auth: 'none', errors: [], success: { status: 200, description: 'ok' } };
const decorate = (name, decorators) => Object.defineProperty(BenchController.prototype, name, Reflect.decorate(decorators, BenchController.prototype, name, Object.getOwnPropertyDescriptor(BenchController.prototype, name)));
decorate('plain', [Route({ ...common, path: 'plain' })]);
decorate('audited', [Route({ ...common, path: 'audited', audit: { action: 'data_query', capability: 'github:read:repos' } })]);
// @Req() on audited's first parameter.
const { Req } = await import('@nestjs/common');
Req()(BenchController.prototype, 'audited', 0);
Controller('bench')(BenchController);

class RuntimeStub {}
Module({ providers: [{ provide: NATS_CONNECTION, useValue: nc }, { provide: SERVICE_ENV, useValue: { AUDIT_PUBLISH_TIMEOUT_MS: 2000 } }], exports: [NATS_CONNECTION, SERVICE_ENV] })(RuntimeStub);
Global()(RuntimeStub);
class BenchModule {}
Module({ imports: [RuntimeStub, AuditModule], controllers: [BenchController] })(BenchModule);

const app = await NestFactory.create(BenchModule, new FastifyAdapter({ logger: false }), { logger: false });
await app.listen({ port: 0, host: '127.0.0.1' });
const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');

async function sequential(path, n) {
  const times = [];
  for (let i = 0; i < n; i += 1) {
    const t = performance.now();
    const r = await fetch(`${base}/bench/${path}`);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: times.reduce((a, b) => a + b, 0) / times.length };
}

async function concurrent(path, n, c) {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) {
        next += 1;
        const r = await fetch(`${base}/bench/${path}`);
        await r.arrayBuffer();
      }
    }),
  );
  return n / ((performance.now() - t) / 1000);
}

const f = (ms) => `${ms.toFixed(2)} ms`;
try {
  await sequential('plain', 300);
  await sequential('audited', 300);
  const plain = await sequential('plain', REQUESTS);
  const audited = await sequential('audited', REQUESTS);
  console.log(`audit latency benchmark: ${REQUESTS} sequential requests per route, node ${process.version}`);
  console.log(`  without recording: p50 ${f(plain.p50)}  p90 ${f(plain.p90)}  p99 ${f(plain.p99)}  mean ${f(plain.mean)}`);
  console.log(`  with recording:    p50 ${f(audited.p50)}  p90 ${f(audited.p90)}  p99 ${f(audited.p99)}  mean ${f(audited.mean)}`);
  console.log(`  the audit step adds: p50 +${f(audited.p50 - plain.p50)}, p99 +${f(audited.p99 - plain.p99)}`);
  const plainRps = await concurrent('plain', REQUESTS * 2, CONCURRENCY);
  const auditedRps = await concurrent('audited', REQUESTS * 2, CONCURRENCY);
  console.log(`  throughput at ${CONCURRENCY} in flight: ${Math.round(plainRps).toLocaleString('en')} req/s without, ${Math.round(auditedRps).toLocaleString('en')} req/s with recording`);
  console.log(JSON.stringify({ bench: 'audit-latency', requests: REQUESTS, p50AddedMs: +(audited.p50 - plain.p50).toFixed(3), p99AddedMs: +(audited.p99 - plain.p99).toFixed(3), plainRps: Math.round(plainRps), auditedRps: Math.round(auditedRps) }));
} finally {
  await app.close();
  await nc.close();
  nats.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
}
