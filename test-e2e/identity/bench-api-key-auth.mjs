#!/usr/bin/env node
// @ts-check
// Benchmark: what API-key authentication costs per request. Starts a private stack (fresh
// database, private nats-server, free ports; services from dist: run `pnpm build` first),
// creates an org/app/key through the admin API, then measures
//   1. identity.v1.authenticate_api_key over NATS (the guard's per-request check), and
//   2. GET /v1/applications/{id} over HTTP with the key (guard + one more identity call),
//   3. the same with a revoked key (the 401 path),
// (and identity.v1.get_application alone, the route's second call), one at a time and
// with 32 in flight. Prints figures; asserts nothing.
// Usage: node test-e2e/identity/bench-api-key-auth.mjs [seconds-per-run, default 5]
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import pg from 'pg';

import { ensureNats, startStack } from '../../scripts/start.mjs';

const seconds = Number(process.argv[2] ?? 5);
const rootDir = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const OPERATOR_TOKEN = `bench-operator-token-${randomUUID()}`;

/** @returns {Promise<number>} */
const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/**
 * Runs `op` for `seconds` with `concurrency` in flight; returns rate and latency percentiles.
 * @param {() => Promise<unknown>} op @param {number} concurrency
 */
async function measure(op, concurrency) {
  const latencies = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await op();
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(2);
  return `${Math.round(latencies.length / seconds)
    .toString()
    .padStart(6)}/s   p50 ${pct(50)} ms   p99 ${pct(99)} ms`;
}

const database = `cg_bench_${randomUUID().slice(0, 8)}`;
const admin = new URL(ADMIN_URL);
const databaseUrl = `${admin.protocol}//${admin.username}@${admin.host}/${database}`;
const natsUrl = `nats://127.0.0.1:${await freePort()}`;
const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-'));
const nats = await ensureNats(natsUrl, join(scratch, 'nats'), { log: () => {}, natsTestProbe: true });
const ports = {};
for (const s of ['gateway', 'identity', 'policy', 'connection-broker', 'audit', 'personal-server', 'sync-worker'])
  ports[s] = await freePort();
const stack = await startStack({
  rootDir,
  databaseUrl,
  natsUrl,
  natsSeedFiles: nats.natsSeedFiles,
  ports,
  log: () => {},
  readyTimeoutMs: 90_000,
  env: { LOG_LEVEL: 'warn', OPERATOR_TOKEN, MASTER_KEY_FILE: join(scratch, 'keys', 'master.key') },
});
const gateway = stack.urls.gateway;
// The bench's own client, as the gateway calls identity (scripts/stack/nats-auth.mjs' test probe).
const nc = await connect({
  servers: natsUrl,
  authenticator: nkeyAuthenticator(
    new TextEncoder().encode(readFileSync(nats.natsSeedFiles['e2e-probe'], 'utf8').trim()),
  ),
});
try {
  const call = async (method, path, body) => {
    const res = await fetch(`${gateway}${path}`, {
      method,
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body && JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const org = await call('POST', '/v1/admin/organizations', { name: 'Bench' });
  const app = await call('POST', `/v1/admin/organizations/${org.id}/applications`, {
    name: 'bench',
    callbackUrls: ['https://bench.example/cb'],
  });
  const key = await call('POST', `/v1/admin/applications/${app.id}/api-keys`);
  const revoked = await call('POST', `/v1/admin/applications/${app.id}/api-keys`);
  await call('DELETE', `/v1/admin/applications/${app.id}/api-keys/${revoked.id}`);

  const client = new RpcClient(nc);
  const check = () => client.request(rpc.identity.authenticateApiKey, { apiKey: key.secret });
  const get = (secret, status) => async () => {
    const res = await fetch(`${gateway}/v1/applications/${app.id}`, { headers: { authorization: `Bearer ${secret}` } });
    await res.arrayBuffer();
    if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}`);
  };
  for (let i = 0; i < 200; i++) await get(key.secret, 200)(); // warm up (JIT, pools)

  console.log(`API-key authentication, ${seconds}s per run, client and stack on the same machine`);
  for (const c of [1, 32])
    console.log(`  NATS authenticate_api_key          c=${String(c).padEnd(2)} ${await measure(check, c)}`);
  const getApp = () => client.request(rpc.identity.getApplication, { orgId: org.id, applicationId: app.id });
  for (const c of [1, 32])
    console.log(`  NATS get_application              c=${String(c).padEnd(2)} ${await measure(getApp, c)}`);
  for (const c of [1, 32])
    console.log(
      `  HTTP GET /v1/applications/:id 200  c=${String(c).padEnd(2)} ${await measure(get(key.secret, 200), c)}`,
    );
  for (const c of [1, 32])
    console.log(
      `  HTTP same, revoked key → 401       c=${String(c).padEnd(2)} ${await measure(get(revoked.secret, 401), c)}`,
    );
} finally {
  await nc.drain();
  await stack.stop();
  await nats.stop();
  const pgc = new pg.Client({ connectionString: ADMIN_URL });
  await pgc.connect();
  await pgc.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => pgc.end());
  rmSync(scratch, { recursive: true, force: true });
}
