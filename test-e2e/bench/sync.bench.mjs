// pnpm bench:sync — how fast the sync path is, end to end:
//   1. throughput: records/s from an unthrottled GitHub simulator through the sync-worker
//      into a Personal Server (the INITIAL sync of a large account: every page fetched,
//      normalized, encrypted and committed, counted by the worker);
//   2. freshness: seconds from a change at the source to the record being queryable by an
//      app through GET /v1/connections/{id}/records, with webhooks (no polling schedule).
// Runs the stack from dist/ (pnpm build first) with a private database and nats-server.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { startSimulator } from '@context-gateway/source-simulators';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

// The same code `pnpm start` runs.
import { ensureNats, startStack } from '../../scripts/start.mjs';
import { connectAccount } from '../support/connect-account.mjs';
import { signUpWithSoftPasskey } from '../support/soft-passkey.mjs';

const rootDir = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(what, probe, timeoutMs = 30_000, intervalMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch((error) => {
      if (/^sync (failed|needs_reauth)/.test(error.message)) throw error;
      return undefined;
    });
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The whole stack on a fresh database and a private nats-server (as the e2e tests run it). */
async function startBenchStack(env) {
  const id = randomUUID().slice(0, 8);
  const admin = new URL(ADMIN_URL);
  const database = `cg_bench_${id}`;
  const databaseUrl = `${admin.protocol}//${admin.username}@${admin.host}/${database}`;
  const natsUrl = `nats://127.0.0.1:${await freePort()}`;
  const scratch = mkdtempSync(join(tmpdir(), 'cg-bench-sync-'));
  // BENCH_LOG_LEVEL=info shows the services' own logs on stderr (where a run spends its time).
  const log = process.env.BENCH_LOG_LEVEL ? (line) => console.error(line) : () => {};
  const nats = await ensureNats(natsUrl, join(scratch, 'nats'), { log });
  const ports = {};
  for (const s of ['gateway', 'identity', 'policy', 'connection-broker', 'audit', 'personal-server', 'sync-worker'])
    ports[s] = await freePort();
  const stack = await startStack({
    rootDir,
    databaseUrl,
    natsUrl,
    natsSeedFiles: nats.natsSeedFiles,
    ports,
    log,
    readyTimeoutMs: 90_000,
    env: { MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'), ...env },
  });
  return {
    gatewayUrl: stack.urls.gateway,
    natsUrl,
    async stop() {
      try {
        await stack.stop();
      } finally {
        await nats.stop();
        const c = new pg.Client({ connectionString: ADMIN_URL });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => c.end());
        rmSync(scratch, { recursive: true, force: true });
      }
    },
  };
}

// A large account: a run long enough (~10 s) that the rate is the sustained one, not the ramp.
const REPOS = Number(process.env.BENCH_SYNC_REPOS ?? 100_000);
const FRESHNESS_SAMPLES = Number(process.env.BENCH_SYNC_SAMPLES ?? 10);
const CLIENT_ID = 'bench-github';
const CLIENT_SECRET = 'bench-github-secret-0123456789';
const WEBHOOK_SECRET = 'bench-webhook-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos', 'github:read:stars', 'github:read:issues'];
const CALLBACK = 'http://127.0.0.1:9/bench-callback';
const OPERATOR_TOKEN = 'bench-operator-token-0123456789abcdef0123456789';

const sim = await startSimulator({ provider: 'github', rateLimit: 10_000_000 });
const stack = await startBenchStack({
  OPERATOR_TOKEN,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
  INTEGRATION_GITHUB_BASE_URL: sim.url,
  INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
  INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
  GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
  SYNC_INTERVAL_MS: '3600000',
});
const nc = await connect(stack.natsOptions());
try {
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'bench',
  });
  await sim.control.configureWebhook({ url: `${stack.gatewayUrl}/v1/webhooks/github`, secret: WEBHOOK_SECRET });

  const admin = async (method, path, body) => {
    const res = await fetch(`${stack.gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const org = await admin('POST', '/v1/admin/organizations', { name: 'Bench' });
  await admin('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] });
  const app = await admin('POST', `/v1/admin/organizations/${org.id}/applications`, {
    name: 'Bench App',
    callbackUrls: [CALLBACK],
    integrations: ['github'],
    scopes: SCOPES,
  });
  const { secret: key } = await admin('POST', `/v1/admin/applications/${app.id}/api-keys`);
  const client = new RpcClient(nc);
  const session = {
    orgId: org.id,
    applicationId: app.id,
    applicationName: 'Bench App',
    integration: 'github',
    scopes: SCOPES,
    callbackUrl: CALLBACK,
  };
  await waitFor('the broker to know the app', () =>
    client.request(rpc.broker.createConnectSession, session).then(() => true),
  );

  // Each account is a new person, signed in with a software passkey at the gateway.
  const connectGithub = async (login) =>
    connectAccount(
      client,
      session,
      await signUpWithSoftPasskey(`http://localhost:${new URL(stack.gatewayUrl).port}`),
      login,
    );
  const api = async (path) => {
    const res = await fetch(`${stack.gatewayUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  // Polled every 100 ms: each poll is an audited API request, and a busier poll would take
  // CPU from the run being measured. The run's end is the server's own lastSuccessAt.
  const synced = (connectionId, timeoutMs) =>
    waitFor(
      'the sync',
      async () => {
        const s = await api(`/v1/connections/${connectionId}/sync`);
        if (s.state === 'failed' || s.state === 'needs_reauth') throw new Error(`sync ${s.state}: ${s.lastError}`);
        return s.state === 'idle' && s.lastSuccessAt ? s : undefined;
      },
      timeoutMs,
      100,
    );

  // A typical account first: it warms the stack up (JIT, connections, keys) the way a
  // running deployment is warm, and is the account the freshness part changes.
  await sim.control.createAccount({ login: 'bench-small', counts: { repos: 150, starred: 50, issues: 20 } });
  const small = await connectGithub('bench-small');
  await synced(small, 60_000);

  // 1. Throughput.
  const seedStarted = Date.now();
  await sim.control.createAccount({ login: 'bench-big', counts: { repos: REPOS, starred: 100, issues: 100 } });
  console.log(`seeded ${REPOS} repositories in ${Date.now() - seedStarted} ms`);
  const t0 = performance.now();
  const big = await connectGithub('bench-big');
  // The run itself: from when the API first shows it running (polled every 5 ms) to its end.
  // The same machine's clock as the services': the run starts when the API first shows it
  // running (polled every 5 ms until then) and ends at the server's lastSuccessAt.
  const running = await waitFor('the run to start', async () => {
    const s = await api(`/v1/connections/${big}/sync`);
    return s.state === 'running' || s.lastSuccessAt ? Date.now() : undefined;
  });
  const state = await synced(big, 600_000);
  const ended = Date.parse(state.lastSuccessAt);
  const seconds = (ended - (Date.now() - (performance.now() - t0))) / 1000;
  const runSeconds = (ended - running) / 1000;
  const counters = await sim.control.counters();
  console.log(
    `throughput: ${state.recordsSynced} records in ${runSeconds.toFixed(2)} s = ${Math.round(state.recordsSynced / runSeconds)} records/s ` +
      `(the sync run: ${counters.apiRequests} source requests, normalize, write; unthrottled source)`,
  );
  console.log(
    `  with the connect flow and queueing before it: ${seconds.toFixed(2)} s = ${Math.round(state.recordsSynced / seconds)} records/s`,
  );

  // Where the time goes: the source alone (the same pages, fetched one after another as the
  // connector does) and the Personal Server's write path alone (the same number of records
  // in 500-record writes to one connection, as the worker sends them).
  const token = await client.request(rpc.broker.getAccessToken, { connectionId: big });
  let url = `${sim.url}/user/repos?per_page=100&sort=full_name`;
  let fetched = 0;
  const s0 = performance.now();
  while (url) {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/vnd.github+json' },
    });
    fetched += (await res.json()).length;
    url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  const sourceSeconds = (performance.now() - s0) / 1000;
  console.log(
    `  source alone: ${fetched} repositories in ${sourceSeconds.toFixed(2)} s = ${Math.round(fetched / sourceSeconds)} records/s`,
  );
  const encoder = new TextEncoder();
  for (const inFlight of [1, 4]) {
    const w0 = performance.now();
    const writes = [];
    let written = 0;
    for (let b = 0; b < REPOS / 500; b++) {
      const records = Array.from({ length: 500 }, (_, i) => ({
        type: 'code.repository',
        externalId: `bench-${inFlight}-${b * 500 + i}`,
        dataJson: encoder.encode(
          JSON.stringify({
            source: 'github',
            id: `bench-${b * 500 + i}`,
            fullName: `bench/repo-${b * 500 + i}`,
            description: 'a benchmark record of ordinary size',
            private: false,
            language: 'TypeScript',
            url: 'https://example.test/repo',
          }),
        ),
      }));
      const p = client
        .request(rpc.personalServer.writeRecords, {
          userId: token.userId,
          connectionId: big,
          integration: 'github',
          records,
        })
        .then((r) => (written += r.written));
      writes.push(p);
      if (writes.length >= inFlight) await writes.shift();
    }
    await Promise.all(writes);
    const ws = (performance.now() - w0) / 1000;
    console.log(
      `  Personal Server writes alone (${inFlight} in flight): ${written} records in ${ws.toFixed(2)} s = ${Math.round(written / ws)} records/s`,
    );
  }

  // 2. Freshness with webhooks: the typical account, one change at a time.
  const repos = (await sim.control.list('bench-small', 'repos')).items;
  const samples = [];
  for (let i = 0; i < FRESHNESS_SAMPLES; i++) {
    const target = repos[(i * 13) % repos.length];
    const marker = `bench change ${i} ${randomUUID()}`;
    const changedAt = performance.now();
    await sim.control.updateItem('bench-small', 'repos', target.id, { description: marker });
    for (;;) {
      const page = await api(
        `/v1/connections/${small}/records?type=code.repository&since=${new Date(Date.now() - 60_000).toISOString()}&limit=500`,
      );
      if (page.records.some((r) => r.externalId === String(target.id) && r.data?.description === marker)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    samples.push((performance.now() - changedAt) / 1000);
  }
  samples.sort((a, b) => a - b);
  const pct = (p) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))];
  console.log(
    `freshness (change at the source → queryable, webhooks): p50 ${pct(50).toFixed(2)} s, max ${samples[samples.length - 1].toFixed(2)} s over ${samples.length} changes`,
  );
} finally {
  await nc.close();
  await stack.stop();
  await sim.stop();
}
