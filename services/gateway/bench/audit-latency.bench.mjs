// pnpm bench:audit (part 2): what recording an audit event adds to a request. The same
// handler behind two routes of a real Nest/Fastify gateway app (built dist/): one plain,
// one with `audit: { action: 'data_query' }`, whose AuditRouteInterceptor publishes the
// event to a file-storage JetStream AUDIT stream and waits for its ack before answering.
//
//   BENCH_REQUESTS=3000 node services/gateway/bench/audit-latency.bench.mjs
import 'reflect-metadata';

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Clock, systemClock } from '@context-gateway/clock';
import { connectNats, ensureStreams } from '@context-gateway/messaging';
import { createLogger } from '@context-gateway/observability';
import { streams } from '@context-gateway/proto';
import { NATS_CONNECTION, SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Global, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';

import { freePort } from '../../../scripts/free-port.mjs';

const dist = new URL('../dist/', import.meta.url);
if (!existsSync(new URL('audit/audit.module.js', dist))) {
  console.error('services/gateway is not built: run `pnpm build` first');
  process.exit(1);
}
const { AuditModule } = await import(new URL('audit/audit.module.js', dist).href);
const { setAuditSubject } = await import(new URL('audit/audit-subject.js', dist).href);
const { Route } = await import(new URL('http/route.decorator.js', dist).href);

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-audit-latency-'));
const natsPort = await freePort();
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(scratch, 'nats')], {
  stdio: 'ignore',
  env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
});
await sleep(500);
const logger = createLogger({ service: 'bench', level: 'silent' });
const nc = await connectNats({
  url: `nats://127.0.0.1:${natsPort}`,
  name: 'bench-audit-latency',
  logger,
  bootTimeoutMs: 5_000,
});
await ensureStreams(nc, [streams.audit], logger);

const ORG = '0b0e6a3c-1111-4a7b-9c55-0d6f3f9c2a11';
class BenchController {
  plain() {
    return { rows: 1 };
  }
  audited(request) {
    setAuditSubject(request, {
      orgId: ORG,
      userId: 'user-1',
      integration: 'github',
      actorKind: 'api_key',
      actorId: 'key-1',
    });
    return { rows: 1 };
  }
}
const common = {
  method: 'GET',
  summary: 'bench',
  tags: ['bench'],
  auth: 'none',
  errors: [],
  success: { status: 200, description: 'ok' },
};
const decorate = (name, decorators) =>
  Object.defineProperty(
    BenchController.prototype,
    name,
    Reflect.decorate(
      decorators,
      BenchController.prototype,
      name,
      Object.getOwnPropertyDescriptor(BenchController.prototype, name),
    ),
  );
decorate('plain', [Route({ ...common, path: 'plain' })]);
decorate('audited', [
  Route({ ...common, path: 'audited', audit: { action: 'data_query', capability: 'github:read:repos' } }),
]);
// @Req() on audited's first parameter.
const { Req } = await import('@nestjs/common');
Req()(BenchController.prototype, 'audited', 0);
Controller('bench')(BenchController);

class RuntimeStub {}
Module({
  providers: [
    { provide: NATS_CONNECTION, useValue: nc },
    { provide: SERVICE_ENV, useValue: { AUDIT_PUBLISH_TIMEOUT_MS: 2000 } },
    { provide: Clock, useValue: systemClock },
  ],
  exports: [NATS_CONNECTION, SERVICE_ENV, Clock],
})(RuntimeStub);
Global()(RuntimeStub);
class BenchModule {}
Module({ imports: [RuntimeStub, AuditModule], controllers: [BenchController] })(BenchModule);

const app = await NestFactory.create(BenchModule, new FastifyAdapter({ logger: false }), { logger: false });
await app.listen({ port: 0, host: '127.0.0.1' });
const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');

/** One request to each route per round, alternating, so both see the same machine load. */
async function interleaved(n) {
  const times = { plain: [], audited: [] };
  for (let i = 0; i < n; i += 1) {
    for (const path of i % 2 === 0 ? ['plain', 'audited'] : ['audited', 'plain']) {
      const t = performance.now();
      const r = await fetch(`${base}/bench/${path}`);
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
      times[path].push(performance.now() - t);
    }
  }
  const stats = (list) => {
    list.sort((a, b) => a - b);
    const at = (q) => list[Math.min(list.length - 1, Math.floor(q * list.length))];
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: list.reduce((a, b) => a + b, 0) / list.length };
  };
  return { plain: stats(times.plain), audited: stats(times.audited) };
}

const f = (ms) => `${ms.toFixed(2)} ms`;
try {
  await interleaved(300);
  const { plain, audited } = await interleaved(REQUESTS);
  console.log(
    `audit latency benchmark: ${REQUESTS} sequential requests per route (interleaved), node ${process.version}`,
  );
  console.log(
    `  without recording: p50 ${f(plain.p50)}  p90 ${f(plain.p90)}  p99 ${f(plain.p99)}  mean ${f(plain.mean)}`,
  );
  console.log(
    `  with recording:    p50 ${f(audited.p50)}  p90 ${f(audited.p90)}  p99 ${f(audited.p99)}  mean ${f(audited.mean)}`,
  );
  console.log(`  the audit step adds: p50 +${f(audited.p50 - plain.p50)}, p99 +${f(audited.p99 - plain.p99)}`);
  console.log(
    JSON.stringify({
      bench: 'audit-latency',
      requests: REQUESTS,
      p50AddedMs: +(audited.p50 - plain.p50).toFixed(3),
      p99AddedMs: +(audited.p99 - plain.p99).toFixed(3),
    }),
  );
} finally {
  await app.close();
  await nc.close();
  nats.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
}
