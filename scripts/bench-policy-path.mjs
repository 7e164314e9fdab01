#!/usr/bin/env node
// @ts-check
// Second half of `pnpm bench:policy`: decisions through the gateway's FULL decision path,
// next to the in-process engine and cedar-wasm figures printed before it.
//
// Starts identity, policy and gateway from dist (run `pnpm build` first) on a fresh database
// and a private nats-server, creates an org with an application whose org carries a few
// hundred rules, then measures:
//   - PolicyDecider (services/gateway/dist/policy): the gateway's in-process decider with its
//     per-org cache and the per-decision freshness check (one CONTROL stream-info round trip,
//     shared by concurrent decisions) — 1 and 64 decisions in flight;
//   - POST /v1/policy/explain over HTTP with an API key (auth + the same decider) — 1 and 32
//     clients.
// Env: BENCH_PATH_SECONDS (default 4), TEST_DATABASE_ADMIN_URL.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { operatorApi } from './stack/gateway-bench.mjs';
import { ensureNats } from './stack/infra.mjs';
import { startStack } from './stack/stack.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_PATH_SECONDS ?? 4);
const OPERATOR_TOKEN = `bench-operator-${randomUUID()}`;
const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dist = (p) => join(ROOT, p);
for (const f of [
  'services/gateway/dist/policy/policy-decider.js',
  'libs/messaging/dist/index.js',
  'proto/dist/index.js',
]) {
  if (!existsSync(dist(f))) {
    console.error(`gateway path: ${f} is not built — run \`pnpm build\` first`);
    process.exit(2);
  }
}
const { PolicyDecider } = await import(dist('services/gateway/dist/policy/policy-decider.js'));
const { ControlHead } = await import(dist('services/gateway/dist/policy/control-head.js'));
const { RpcClient, JetStreamPublisher, connectNats, readUserSeed } = await import(dist('libs/messaging/dist/index.js'));
const { rpc, events, GrantStatus, PolicyEffect } = await import(dist('proto/dist/index.js'));
const { createLogger } = await import(dist('libs/observability/dist/index.js'));
const { timestampNow } = await import(join(ROOT, 'proto/node_modules/@bufbuild/protobuf/dist/esm/wkt/index.js'));
const pg = (await import(join(ROOT, 'test-e2e/node_modules/pg/lib/index.js'))).default;

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

/** Runs `op` with `inFlight` concurrent loops for `seconds`; per-operation latency in ms. */
async function measure(op, inFlight, seconds) {
  const latencies = [];
  const deadline = performance.now() + seconds * 1000;
  let allowed = 0;
  const loop = async () => {
    let i = 0;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      if (await op(i++)) allowed++;
      latencies.push(performance.now() - t0);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, loop));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / elapsed,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    count: latencies.length,
    allowedShare: allowed / Math.max(1, latencies.length),
  };
}

const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-policy-'));
const database = `cg_bench_${randomUUID().slice(0, 8)}`;
const admin = new URL(ADMIN_URL);
const databaseUrl = `${admin.protocol}//${admin.username}@${admin.host}/${database}`;
const natsPort = 20_000 + Math.floor(Math.random() * 20_000);
const natsUrl = `nats://127.0.0.1:${natsPort}`;
const quiet = () => {};
// The bench's own nats-server requires credentials; the probe identity publishes the grants.
const nats = await ensureNats(natsUrl, join(scratch, 'nats'), { log: quiet, natsTestProbe: true });
const ports = { identity: natsPort + 1, policy: natsPort + 2, gateway: natsPort + 3 };
let stack;
let nc;
let decider;
try {
  stack = await startStack({
    rootDir: ROOT,
    databaseUrl,
    natsUrl,
    natsSeedFiles: nats.natsSeedFiles,
    ports,
    services: ['identity', 'policy', 'gateway'],
    log: quiet,
    readyTimeoutMs: 90_000,
    env: {
      LOG_LEVEL: 'warn',
      OPERATOR_TOKEN,
      MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'),
      BOOT_TIMEOUT_MS: '20000',
    },
  });
  const gatewayUrl = stack.urls.gateway;
  const call = operatorApi(gatewayUrl, OPERATOR_TOKEN);

  // The corpus: one org, 20 apps, 200 users with grants, ~300 rules in force.
  const org = await call('POST', '/v1/admin/organizations', { name: 'Bench org' });
  const apps = [];
  for (let i = 0; i < 20; i++) {
    apps.push(
      await call('POST', `/v1/admin/organizations/${org.id}/applications`, {
        name: `app-${i}`,
        callbackUrls: ['https://bench.example/cb'],
        integrations: ['github', 'spotify'],
        scopes: ['github:create_issue'],
      }),
    );
  }
  const key = (await call('POST', `/v1/admin/applications/${apps[0].id}/api-keys`)).secret;
  await call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, {
    integrations: ['github', 'spotify', 'slack'],
  });
  nc = await connectNats({
    url: natsUrl,
    name: 'bench',
    logger: createLogger({ service: 'bench', level: 'silent' }),
    bootTimeoutMs: 5_000,
    seed: readUserSeed(nats.natsSeedFiles['e2e-probe']),
  });
  const publisher = new JetStreamPublisher(nc);
  const rpcClient = new RpcClient(nc);
  const users = Array.from({ length: 200 }, () => randomUUID());
  let lastSeq = 0;
  for (const [i, user] of users.entries()) {
    lastSeq = (
      await publisher.publish(events.grantChanged, {
        eventId: randomUUID(),
        grantId: randomUUID(),
        orgId: org.id,
        applicationId: apps[i % apps.length].id,
        userId: user,
        connectionId: randomUUID(),
        integration: 'github',
        scopes: ['github:create_issue', 'github:read:repos'],
        status: GrantStatus.ACTIVE,
        revision: 1n,
        occurredAt: timestampNow(),
      })
    ).seq;
  }
  for (let i = 0; i < 40; i++) {
    await rpcClient.request(rpc.policy.putOrgRule, {
      orgId: org.id,
      rule: { effect: PolicyEffect.DENY, capability: 'github:create_issue', resources: [`repo:acme/secret-${i}*`] },
    });
    await rpcClient.request(rpc.policy.putApplicationRule, {
      orgId: org.id,
      applicationId: apps[i % apps.length].id,
      rule: { effect: PolicyEffect.DENY, capability: 'github:read:repos', resources: [`repo:acme/private-${i}`] },
    });
  }
  // Let policy apply every grant first (a decider would wait for it too, but not inside the timing).
  let snapshot;
  for (const started = Date.now(); Date.now() - started < 120_000; await new Promise((r) => setTimeout(r, 200))) {
    snapshot = await rpcClient
      .request(rpc.policy.getCompiledRules, { orgId: org.id }, { timeoutMs: 10_000 })
      .catch(() => undefined);
    if (snapshot && Number(snapshot.controlSeq) >= lastSeq) break;
  }

  // What a cache refill costs (policy builds the snapshot from Postgres; the gateway compiles it).
  const fills = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    await rpcClient.request(rpc.policy.getCompiledRules, { orgId: org.id }, { timeoutMs: 10_000 });
    fills.push(performance.now() - t0);
  }
  fills.sort((a, b) => a - b);

  // Requests for app 0 (the key's app) and its users: a mix of allowed and denied.
  const app0Users = users.filter((_, i) => i % apps.length === 0);
  const caps = ['github:create_issue', 'github:read:repos', 'github:delete_repository', 'spotify:read:playlists'];
  const requests = Array.from({ length: 4_096 }, (_, i) => ({
    orgId: org.id,
    applicationId: apps[0].id,
    userId: app0Users[i % app0Users.length],
    capability: caps[i % caps.length],
    ...(i % 3 === 0 ? { resource: `repo:acme/${i % 7 === 0 ? 'secret-3x' : 'frontend'}` } : {}),
  }));
  const logger = createLogger({ service: 'bench', level: 'silent' });
  decider = new PolicyDecider(rpcClient, nc, { POLICY_FRESHNESS_TIMEOUT_MS: 3_000 }, logger, new ControlHead(nc));
  await decider.onApplicationBootstrap();
  const viaDecider = async (i) => (await decider.evaluate(requests[i % requests.length])).allowed;
  await measure(viaDecider, 8, 1); // warm-up: fills the cache, JIT
  const d1 = await measure(viaDecider, 1, SECONDS);
  const d64 = await measure(viaDecider, 64, SECONDS);

  const viaHttp = async (i) => {
    const r = requests[i % requests.length];
    const res = await fetch(`${gatewayUrl}/v1/policy/explain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        applicationId: r.applicationId,
        userId: r.userId,
        capability: r.capability,
        ...(r.resource ? { resource: r.resource } : {}),
      }),
    });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`explain → ${res.status} ${JSON.stringify(body)}`);
    return body.allowed;
  };
  await measure(viaHttp, 8, 1);
  const h1 = await measure(viaHttp, 1, SECONDS);
  const h32 = await measure(viaHttp, 32, SECONDS);

  const line = (name, m) =>
    `${name}: ${fmt(m.perSecond)} decisions/s, p50 ${m.p50.toFixed(3)} ms, p99 ${m.p99.toFixed(3)} ms (${fmt(m.count)} in ${SECONDS} s, ${(m.allowedShare * 100).toFixed(0)}% allowed)`;
  console.log(
    `\ngateway path: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()}; identity + policy + gateway + nats-server on the same cores as the load`,
  );
  console.log(
    `gateway path: org with ${snapshot.rules.length} rules in force (revision ${snapshot.revision}), ${fmt(requests.length)} distinct requests`,
  );
  console.log(`gateway path: policy.v1.get_compiled_rules (a cache refill) median ${fills[3].toFixed(1)} ms over 7`);
  console.log(line('PolicyDecider, 1 in flight  ', d1));
  console.log(line('PolicyDecider, 64 in flight ', d64));
  console.log(line('HTTP explain, 1 client      ', h1));
  console.log(line('HTTP explain, 32 clients    ', h32));
} finally {
  await decider?.onApplicationShutdown().catch(() => {});
  await nc?.close().catch(() => {});
  await stack?.stop().catch(() => {});
  await nats.stop();
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => client.end());
  rmSync(scratch, { recursive: true, force: true });
}
