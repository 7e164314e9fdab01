// The gateway's own CPU per records query (docs/perf/README.md, "The gateway's HTTP path"):
//   node services/gateway/bench/records-http.bench.mjs            (after `pnpm build`)
//   BENCH_BEFORE=services/gateway/dist/<copy>.bundle.js node …    (also a second gateway to compare)
//
// Starts identity, policy and the gateway from dist on a fresh database of the local Postgres
// and a private nats-server. The Personal Server is played by this process: it answers
// `ps.v1.locate_connection` and `ps.v1.shard.0.query` over the real NATS (as the
// personal-server identity) with one fixed page of BENCH_PAGE records, so what is measured is
// the gateway alone: HTTP, API key, policy, audit, NATS round trip, reply.
//
// With BENCH_BEFORE (a gateway bundle built from another commit, copied into
// services/gateway/dist/ so that it finds its package the same way), a second gateway runs
// beside the first, with the same environment, and the two are driven in turn
// (before, after, before, after; BENCH_ROUNDS pairs). Each phase sends BENCH_REQUESTS
// GET /v1/connections/{id}/records?type=media.playlist&limit=20 from BENCH_CONCURRENCY
// keep-alive clients and prints the gateway process's CPU (user + system, /proc) per request:
// CPU time, not wall-clock, so other work on a busy machine blurs it less.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connectNats, JetStreamPublisher, readUserSeed } from '@context-gateway/messaging';
import { answerRpc } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { events, GrantStatus, rpc } from '@context-gateway/proto';

import { benchOrgWithApp, operatorApi, startGatewayBench } from '../../../scripts/stack/gateway-bench.mjs';
import { profileShares } from './profile-share.mjs';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const PAGE = Number(process.env.BENCH_PAGE ?? 20);
const BEFORE = process.env.BENCH_BEFORE ? resolve(process.env.BENCH_BEFORE) : undefined;
const OPERATOR_TOKEN = `bench-operator-${randomUUID()}`;
// With BENCH_PROFILE_DIR, every service (and the second gateway) writes a V8 CPU profile there
// and windows.json says when each gateway's phases ran (V8's clock: process.hrtime, in µs), for
// `node scripts/flamegraph.mjs <profile> --from-us A --to-us B --top 40`.
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : undefined;
const NODE_ARGS = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
const TICK_US = 1e6 / 100; // /proc/<pid>/stat counts in clock ticks (USER_HZ, 100 on Linux)

/** utime + stime of a process, in µs. */
function cpuUs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

/** One page as a shard answers it: the records as a finished JSON array. */
function fixedPage() {
  const records = Array.from({ length: PAGE }, (_, i) => ({
    id: randomUUID(),
    type: 'media.playlist',
    externalId: `playlist-${i}`,
    updatedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
    sourceUpdatedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
    deleted: false,
    data: { name: `Playlist ${i}`, description: 'A fixed page for the bench', tracks: 40 + i, public: i % 2 === 0 },
  }));
  return Buffer.from(JSON.stringify(records));
}

/** `total` GETs of `path` from `concurrency` keep-alive clients; answers by status. */
async function drive(baseUrl, path, headers, total, concurrency) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(path, baseUrl);
  const byStatus = new Map();
  let sent = 0;
  const one = () =>
    new Promise((resolveOne, reject) => {
      const req = request(url, { agent, headers }, (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1);
          resolveOne();
        });
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        sent += 1;
        await one();
      }
    }),
  );
  agent.destroy();
  return byStatus;
}

async function waitReady(url, child) {
  for (let i = 0; i < 600; i += 1) {
    if (child.exitCode !== null) throw new Error(`the second gateway exited (${child.exitCode})`);
    const ok = await fetch(`${url}/readyz`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the second gateway did not become ready');
}

if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
/** The measured phases: which gateway, when (V8's clock), how many requests. */
const windows = [];
let bench;
let before;
let shard;
try {
  bench = await startGatewayBench({
    rootDir: ROOT,
    name: 'records-http',
    readyTimeoutMs: 180_000,
    env: {
      OPERATOR_TOKEN,
      BOOT_TIMEOUT_MS: '30000',
      // Neither shedding nor rate limits: every request goes the whole way.
      SHED_MAX_IN_FLIGHT: '0',
      RATE_LIMIT_PER_KEY: '0',
      RATE_LIMIT_PER_IP: '0',
      ...(PROFILE_DIR ? { STACK_NODE_ARGS: NODE_ARGS.join(' ') } : {}),
    },
  });
  const { stack, nats, natsUrl, natsPort } = bench;
  const afterUrl = stack.urls.gateway;
  const call = operatorApi(afterUrl, OPERATOR_TOKEN);
  const { org, app } = await benchOrgWithApp(call, 'spotify', ['spotify:read:playlists']);
  const key = (await call('POST', `/v1/admin/applications/${app.id}/api-keys`)).secret;

  const natsAs = (identity) =>
    connectNats({
      url: natsUrl,
      name: `records-http-bench-${identity}`,
      logger: createLogger({ service: 'records-http-bench', level: 'silent' }),
      seed: readUserSeed(nats.natsSeedFiles[identity]),
      inboxPrefix: `_INBOX.${identity}`,
    });
  const connectionId = randomUUID();
  const userId = randomUUID();
  // What connection-broker publishes after a person's consent: policy's user layer allows the scope.
  const broker = await natsAs('connection-broker');
  const grantOf = { orgId: org.id, applicationId: app.id, userId, connectionId };
  await new JetStreamPublisher(broker).publish(events.grantChanged, {
    ...grantOf,
    grantId: randomUUID(),
    eventId: randomUUID(),
    integration: 'spotify',
    scopes: ['spotify:read:playlists'],
    status: GrantStatus.ACTIVE,
    revision: 1n,
    occurredAt: timestampFromDate(new Date()),
  });
  await broker.close();
  // The Personal Server's part, on the wire as a shard answers it.
  shard = await natsAs('personal-server');
  const page = fixedPage();
  answerRpc(shard, rpc.personalServer.locateConnection, () => ({ shard: 0, userId, integration: 'spotify' }));
  const shardQuery = rpc.personalServer.shardQuery;
  answerRpc(shard, { ...shardQuery, subject: shardQuery.shardSubject(0) }, () => ({
    recordsJson: page,
    nextCursor: '',
    syncedAt: { seconds: BigInt(Math.floor(Date.UTC(2026, 0, 1) / 1000)), nanos: 0 },
  }));
  await shard.flush();

  const gateways = [{ label: 'after', url: afterUrl, pid: stack.processes.gateway.child.pid }];
  if (BEFORE) {
    // The same environment as the stack's gateway (its database login and NATS identity), other ports.
    const environ = readFileSync(`/proc/${gateways[0].pid}/environ`, 'utf8').split('\0').filter(Boolean);
    const env = Object.fromEntries(
      environ.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    const port = natsPort + 4;
    before = spawn(process.execPath, [...NODE_ARGS, BEFORE], {
      cwd: ROOT,
      env: { ...env, HTTP_PORT: String(port), METRICS_PORT: String(port + 1000) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const beforeUrl = `http://127.0.0.1:${port}`;
    await waitReady(beforeUrl, before);
    gateways.unshift({ label: 'before', url: beforeUrl, pid: before.pid });
    // Whatever changed in how the route is served, the published contract must not.
    const [a, b] = await Promise.all(gateways.map(async (g) => (await fetch(`${g.url}/v1/openapi.json`)).text()));
    console.log(`OpenAPI document of before and after: ${a === b ? 'identical' : 'DIFFERENT'} (${a.length} bytes)`);
  }

  const path = `/v1/connections/${connectionId}/records?type=media.playlist&limit=${PAGE}`;
  const headers = { authorization: `Bearer ${key}` };
  for (const gateway of gateways) {
    // Policy applies the consent from its stream shortly after it was published.
    let check;
    for (let attempt = 0; attempt < 100; attempt += 1) {
      check = await fetch(`${gateway.url}${path}`, { headers });
      if (check.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const body = await check.text();
    if (check.status !== 200) throw new Error(`${gateway.label}: ${check.status} ${body}`);
    // Warm-up: JIT, caches (API key, policy snapshot, placement).
    await drive(gateway.url, path, headers, 2000, CONCURRENCY);
  }
  console.log(
    `GET ${path.replace(connectionId, '{id}')}: ${REQUESTS} requests per phase, ${CONCURRENCY} concurrent, page ${page.length} bytes`,
  );
  const results = new Map(gateways.map((g) => [g.label, []]));
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const gateway of gateways) {
      const cpu0 = cpuUs(gateway.pid);
      const t0 = performance.now();
      const fromUs = monotonicUs();
      const byStatus = await drive(gateway.url, path, headers, REQUESTS, CONCURRENCY);
      const seconds = (performance.now() - t0) / 1000;
      windows.push({ label: gateway.label, pid: gateway.pid, fromUs, toUs: monotonicUs(), requests: REQUESTS });
      const perRequest = (cpuUs(gateway.pid) - cpu0) / REQUESTS;
      const failed = REQUESTS - (byStatus.get(200) ?? 0);
      results.get(gateway.label).push(perRequest);
      console.log(
        `  ${gateway.label.padEnd(6)} round ${round + 1}: ${perRequest.toFixed(1)} µs CPU/request, ${Math.round(REQUESTS / seconds)} req/s` +
          (failed ? `, ${failed} not 200: ${JSON.stringify([...byStatus])}` : ''),
      );
    }
  }
  for (const [label, values] of results) {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    console.log(
      `${label.padEnd(6)} mean ${mean.toFixed(1)} µs CPU/request (${values.map((v) => v.toFixed(1)).join(', ')})`,
    );
  }
  if (PROFILE_DIR) writeFileSync(join(PROFILE_DIR, 'windows.json'), JSON.stringify(windows, null, 2));
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`load average at the end: ${loadavg}`);
} finally {
  await shard?.close().catch(() => undefined);
  if (before && before.exitCode === null) {
    const exited = new Promise((r) => before.once('exit', r));
    before.kill('SIGTERM');
    await exited;
  }
  await bench?.stop();
}

// Each process writes its profile as it exits (above): the gateways' shares of busy CPU in their phases.
if (PROFILE_DIR && windows.length > 0) {
  const files = readdirSync(PROFILE_DIR).filter((f) => f.endsWith('.cpuprofile'));
  const rows = {};
  for (const label of new Set(windows.map((w) => w.label))) {
    const mine = windows.filter((w) => w.label === label);
    const file = files.find((f) => f.split('.')[3] === String(mine[0].pid));
    if (!file) continue;
    const shares = profileShares(
      join(PROFILE_DIR, file),
      mine.map((w) => [w.fromUs, w.toUs]),
    );
    rows[label] = Object.fromEntries(
      [...shares].sort((a, b) => b[1] - a[1]).map(([g, v]) => [g, `${(100 * v).toFixed(1)} %`]),
    );
  }
  console.log("share of each gateway's busy CPU in its phases (V8 profile):");
  console.table(rows);
}
