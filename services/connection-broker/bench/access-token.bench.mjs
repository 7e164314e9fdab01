#!/usr/bin/env node
// `pnpm --filter @context-gateway/connection-broker run bench` (after `pnpm build`): what the
// data plane pays to get a source token. Boots the built broker in-process on a private
// nats-server and a throw-away schema, connects one user at the demo simulator, then asks
// broker.v1.get_access_token over NATS for BENCH_SECONDS at concurrency 1 and 32 (a valid
// token: decrypt only) and times forced refreshes (a source round trip under a row lock).
import 'reflect-metadata';

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createTestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { ensureStreams, NatsRpcServer, RpcClient, RpcErrorPassthroughFilter } from '@context-gateway/messaging';
import { answerRpc } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { ConnectDecision, rpc, streams } from '@context-gateway/proto';
import { Metrics, RuntimeModule } from '@context-gateway/service-kit';
import { completeAuthorization, startSimulator } from '@context-gateway/source-simulators';
import { connect } from '@nats-io/transport-node';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

import { AppModule } from '../dist/app.module.js';
import { loadEnv } from '../dist/env.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REDIRECT = 'http://gateway.bench/v1/connect/callback';
const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'broker-bench-'));
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
let nc;
for (let i = 0; !nc; i++)
  nc = await connect({ servers: `nats://127.0.0.1:${port}` }).catch(async (e) =>
    i > 50 ? Promise.reject(e) : new Promise((r) => setTimeout(r, 100)),
  );
const logger = createLogger({ service: 'broker-bench', level: 'silent' });
await ensureStreams(nc, [streams.syncJobs, streams.syncEvents, streams.control, streams.deadLetters], logger);
const db = await createTestSchema({
  prefix: 'broker_bench',
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
});
const demo = await startSimulator({
  provider: 'demo',
  clients: [{ clientId: 'bench', clientSecret: 'bench-secret', redirectUris: [REDIRECT] }],
});
const env = loadEnv({
  DATABASE_URL: db.url,
  NATS_URL: `nats://127.0.0.1:${port}`,
  GATEWAY_PUBLIC_URL: 'http://gateway.bench',
  MASTER_KEY_FILE: join(dir, 'master.key'),
  INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
  INTEGRATION_DEMO_BASE_URL: demo.url,
  INTEGRATION_DEMO_CLIENT_ID: 'bench',
  INTEGRATION_DEMO_CLIENT_SECRET: 'bench-secret',
});
class Root {}
Module({
  imports: [
    RuntimeModule.forRoot({
      service: 'connection-broker',
      env,
      info: { name: 'connection-broker', version: 'bench', databaseSchema: db.schema },
      pool: db.pool,
      nc,
      logger,
      metrics: new Metrics({ service: 'connection-broker', version: 'bench' }),
      closeMetrics: () => Promise.resolve(),
      shutdownTracing: async () => {},
    }),
    AppModule,
  ],
})(Root);
const app = await NestFactory.createMicroservice(Root, {
  strategy: new NatsRpcServer({ connection: nc, queue: 'connection-broker', logger }),
  logger: false,
  abortOnError: false,
});
app.useGlobalFilters(new RpcErrorPassthroughFilter());
await app.listen();
const client = new RpcClient(nc);

const org = crypto.randomUUID();
const user = crypto.randomUUID();
// The broker runs alone here: identity's answer to "whose session is this" comes from the bench.
const personSessionToken = `cg_ss_${crypto.randomUUID()}`;
answerRpc(nc, rpc.identity.resolveSession, (request) => {
  if (request.sessionToken !== personSessionToken) throw new AppError('unauthenticated', 'Unknown session');
  return { user: { id: user, displayName: 'Bench person' } };
});
const session = await client.request(rpc.broker.createConnectSession, {
  orgId: org,
  applicationId: crypto.randomUUID(),
  applicationName: 'bench',
  integration: 'demo',
  scopes: ['demo:read:notes'],
  callbackUrl: 'https://app.bench/cb',
});
const decided = await client.request(rpc.broker.decideConnectSession, {
  sessionToken: session.sessionToken,
  decision: ConnectDecision.ALLOW,
  personSessionToken,
});
const { redirect } = await completeAuthorization(decided.redirectUrl, { login: 'alice' });
const { connectionId } = await client.request(rpc.broker.completeAuthorization, {
  callbackQuery: redirect.search.slice(1),
  stateCookie: decided.oauthState,
  personSessionToken,
});

async function drive(label, concurrency, forceRefresh, seconds) {
  const latencies = [];
  const refreshed0 = (await demo.control.counters()).tokensRefreshed;
  const cpu0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const refreshes = (await demo.control.counters()).tokensRefreshed - refreshed0;
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
  console.log(
    `${label.padEnd(44)} ${String(Math.round(latencies.length / seconds)).padStart(6)} req/s  p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  cpu ${((cpu.user + cpu.system) / 1000 / latencies.length).toFixed(3)} ms/req (broker + client, one process)${forceRefresh ? `, ${refreshes} refreshes at the source` : ''}`,
  );
}

await drive('warm-up', 4, false, 1);
await drive('get_access_token, valid token, 1 in flight', 1, false, SECONDS);
await drive('get_access_token, valid token, 32 in flight', 32, false, SECONDS);
await drive('forced refresh (source round trip), 1 in flight', 1, true, SECONDS);
await drive('forced refresh, 8 in flight (single-flight)', 8, true, SECONDS);

// The runtime owns the pool once the app has it: drop the schema first, then close.
await db.drop();
await app.close();
await demo.stop();
await nc.drain().catch(() => undefined);
nats.kill();
rmSync(dir, { recursive: true, force: true });
