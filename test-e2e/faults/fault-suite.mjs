// pnpm test:faults — the whole stack under a steady mixed load while, one at a time, each
// service is killed with SIGKILL and started again, nats-server is restarted and Postgres is
// restarted; then a table of what was lost (docs/reliability.md). Loopback only: its own
// embedded Postgres and its own nats-server on free ports (never the shared 5432/4222), the
// services from dist/ (pnpm build first), a GitHub source simulator. Stops by itself.
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { startSimulator } from '@context-gateway/source-simulators';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import pg from 'pg';

import { ensurePostgres } from '../../scripts/stack/infra.mjs';
import { prepareNatsCredentials } from '../../scripts/stack/nats-auth.mjs';
import { spawnManaged } from '../../scripts/stack/processes.mjs';
import { startStack } from '../../scripts/stack/stack.mjs';
import { connectAccount as connectSourceAccount } from '../support/connect-account.mjs';
import { signUpWithSoftPasskey } from '../support/soft-passkey.mjs';

const rootDir = fileURLToPath(new URL('../..', import.meta.url));
const SERVICES = ['gateway', 'identity', 'policy', 'connection-broker', 'audit', 'personal-server', 'sync-worker'];
/** Seconds of load before the first fault and after each recovery. */
const SETTLE_MS = Number(process.env.FAULTS_SETTLE_MS ?? 6_000);
const VICTIMS = SERVICES.length + 2 + 2;
const CLIENT_ID = 'faults-github';
const CLIENT_SECRET = 'faults-github-secret-0123456789';
const WEBHOOK_SECRET = 'faults-webhook-secret-0123456789';
const OPERATOR_TOKEN = 'faults-operator-token-0123456789abcdef0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos'];
const CALLBACK = 'http://127.0.0.1:9/faults-callback';
const verbose = process.env.FAULTS_LOG === '1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (line) => console.log(`[faults ${new Date().toISOString().slice(11, 19)}] ${line}`);

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

async function waitFor(what, probe, timeoutMs = 60_000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'cg-faults-'));
// As root, Postgres runs as the `postgres` user, which must walk into its data folder.
chmodSync(scratch, 0o711);
const logLines = [];
const log = (line) => {
  logLines.push(line);
  if (verbose) console.error(line);
};

// --- infrastructure: our own Postgres and nats-server ---------------------------------

const pgPort = await freePort();
const serverUrl = `postgres://postgres@127.0.0.1:${pgPort}`;
const databaseUrl = `${serverUrl}/context_gateway_faults`;
const pgDir = join(scratch, 'pg', 'data');
// Postgres as deploy/ runs it (postgres:15 defaults): fsync on, synchronous_commit on.
let postgres = await ensurePostgres(databaseUrl, pgDir, { log });
if (!postgres.started) throw new Error(`something already listens on ${pgPort}`);

const natsPort = await freePort();
const natsUrl = `nats://127.0.0.1:${natsPort}`;
// JetStream as deploy/base/nats.yaml configures it: file storage, the server's default
// sync interval (no `sync_interval` set). Its lame-duck mode is left out: nats-server 2.9
// wants at least 30 s, and a restart here is a plain SIGTERM.
// Authorization as everywhere: each service with its own nkey and catalog-generated rights.
const natsAuth = await prepareNatsCredentials(join(scratch, 'nats-credentials'));
const natsConf = join(scratch, 'nats.conf');
writeFileSync(
  natsConf,
  [
    `listen: 127.0.0.1:${natsPort}`,
    `jetstream { store_dir: "${join(scratch, 'jetstream')}", max_file_store: 8Gi, max_memory_store: 256Mi }`,
    readFileSync(natsAuth.configFile, 'utf8'),
    '',
  ].join('\n'),
);
async function startNats() {
  const server = spawnManaged('nats', '/usr/sbin/nats-server', ['--config', natsConf], {
    cwd: scratch,
    env: process.env,
    write: log,
    width: 18,
  });
  await waitFor(
    'nats-server',
    () =>
      new Promise((resolve) => {
        const socket = netConnect({ host: '127.0.0.1', port: natsPort });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    15_000,
    100,
  );
  return server;
}
let nats = await startNats();

const sim = await startSimulator({ provider: 'github', rateLimit: 10_000_000 });
const ports = {};
for (const name of SERVICES) ports[name] = await freePort();
say(`Postgres 127.0.0.1:${pgPort}, NATS 127.0.0.1:${natsPort}, simulator ${sim.url}; starting the stack`);
const stack = await startStack({
  rootDir,
  databaseUrl,
  natsUrl,
  natsSeedFiles: natsAuth.seedFiles,
  ports,
  log,
  readyTimeoutMs: 120_000,
  env: {
    OPERATOR_TOKEN,
    LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? 'warn',
    MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'),
    METRICS_PORT: '0',
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    SYNC_INTERVAL_MS: '3600000',
  },
});
const gatewayUrl = stack.urls.gateway;

let nc;
let exitCode = 1;
try {
  // --- setup: an org, an app with a key, connected accounts (as test-e2e does) -----------
  const port = new URL(gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'faults',
  });
  await sim.control.configureWebhook({ url: `${gatewayUrl}/v1/webhooks/github`, secret: WEBHOOK_SECRET });
  const admin = async (method, path, body) => {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const org = await admin('POST', '/v1/admin/organizations', { name: 'Faults' });
  await admin('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] });
  const app = await admin('POST', `/v1/admin/organizations/${org.id}/applications`, {
    name: 'Faults App',
    callbackUrls: [CALLBACK],
    integrations: ['github'],
    scopes: SCOPES,
  });
  const { secret: apiKey } = await admin('POST', `/v1/admin/applications/${app.id}/api-keys`);
  // Reconnects for as long as the suite runs: its nats-server restarts are part of the test.
  // It asks the broker what the gateway asks it, with the gateway's NATS identity.
  nc = await connect({
    servers: natsUrl,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(natsAuth.seedFiles.gateway, 'utf8').trim())),
    inboxPrefix: '_INBOX.gateway',
  });
  const client = new RpcClient(nc);
  const newSession = () =>
    client.request(rpc.broker.createConnectSession, {
      orgId: org.id,
      applicationId: app.id,
      applicationName: 'Faults App',
      integration: 'github',
      scopes: SCOPES,
      callbackUrl: CALLBACK,
    });
  await waitFor('the broker to know the app', () => newSession().then(() => true));
  // The connect flow without a browser (support/connect-account.mjs). Each account is a new
  // person, signed in with a software passkey at the gateway, who signs their consent with it.
  const connectAccount = async (login) => {
    const person = await signUpWithSoftPasskey(`http://localhost:${new URL(gatewayUrl).port}`);
    return connectSourceAccount(
      client,
      {
        orgId: org.id,
        applicationId: app.id,
        applicationName: 'Faults App',
        integration: 'github',
        scopes: SCOPES,
        callbackUrl: CALLBACK,
      },
      person,
      login,
    );
  };

  /** Every audited request the load made: its id, what it was, its answer. */
  const requests = [];
  const api = async (method, path, kind, extra = {}) => {
    const requestId = randomUUID();
    const entry = { requestId, kind, method, path, startedAt: Date.now(), status: 0, ...extra };
    requests.push(entry);
    try {
      const res = await fetch(`${gatewayUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'x-request-id': requestId },
        signal: AbortSignal.timeout(30_000),
      });
      entry.status = res.status;
      entry.body = await res.json().catch(() => undefined);
    } catch (error) {
      entry.error = error?.cause?.code ?? error?.name ?? String(error);
    }
    entry.endedAt = Date.now();
    return entry;
  };
  const syncState = async (connectionId) => {
    const res = await fetch(`${gatewayUrl}/v1/connections/${connectionId}/sync`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    return res.ok ? res.json() : undefined;
  };
  const synced = (connectionId, timeoutMs = 120_000, after = 0) =>
    waitFor(
      `the sync of ${connectionId}`,
      async () => {
        const s = await syncState(connectionId);
        return s?.state === 'idle' && s.lastSuccessAt && Date.parse(s.lastSuccessAt) > after ? s : undefined;
      },
      timeoutMs,
      500,
    );

  await sim.control.createAccount({ login: 'faults-main', counts: { repos: 200, starred: 0, issues: 0 } });
  const main = await connectAccount('faults-main');
  const victims = [];
  for (let i = 0; i < VICTIMS; i++) {
    await sim.control.createAccount({ login: `faults-victim-${i}`, counts: { repos: 5, starred: 0, issues: 0 } });
    victims.push(await connectAccount(`faults-victim-${i}`));
  }
  await synced(main);
  for (const victim of victims) await synced(victim);
  say(`set up: 1 main connection (200 repositories), ${victims.length} connections to revoke one by one`);

  // --- the load ------------------------------------------------------------------------
  let running = true;
  /** Connection id → time its revocation was answered 200. */
  const revokedAt = new Map();
  const live = new Set(victims);
  const loops = [];
  // Records queries: the main connection, the victims still granted, and the revoked ones
  // (each must now be refused).
  for (let worker = 0; worker < 3; worker++) {
    loops.push(
      (async () => {
        let i = worker;
        while (running) {
          const targets = [main, ...victims];
          const connectionId = targets[i++ % targets.length];
          await api('GET', `/v1/connections/${connectionId}/records?type=code.repository&limit=20`, 'query', {
            connectionId,
          });
          await sleep(20);
        }
      })(),
    );
  }
  // Webhook-driven changes at the source: update, add, delete repositories of the main account.
  let changes = 0;
  loops.push(
    (async () => {
      while (running) {
        const { items } = await sim.control.list('faults-main', 'repos');
        const pick = items[Math.floor(Math.random() * items.length)];
        const roll = Math.random();
        await (
          roll < 0.6
            ? sim.control.updateItem('faults-main', 'repos', pick.id, { description: `change ${randomUUID()}` })
            : roll < 0.8 || items.length < 150
              ? sim.control.addItem('faults-main', 'repos', {})
              : sim.control.deleteItem('faults-main', 'repos', pick.id)
        ).then(
          () => (changes += 1),
          () => undefined,
        );
        await sleep(250);
      }
    })(),
  );
  // Sync runs asked for through the API.
  loops.push(
    (async () => {
      while (running) {
        await api('POST', `/v1/connections/${main}/sync`, 'sync');
        await sleep(3_000);
      }
    })(),
  );
  // MCP tool calls: gateway mode does not exist yet; its load loop goes here.

  /** Revokes the next victim's grant (one per fault), retried until an answer is 200. */
  const revokeOne = async () => {
    const connectionId = [...live][0];
    if (!connectionId) return;
    live.delete(connectionId);
    for (let attempt = 0; attempt < 60; attempt++) {
      const answer = await api('DELETE', `/v1/connections/${connectionId}/grant`, 'revoke', { connectionId });
      if (answer.status === 200) {
        revokedAt.set(connectionId, answer.endedAt);
        return;
      }
      await sleep(500);
    }
  };

  const allReady = async () => {
    const answers = await Promise.all(
      SERVICES.map((name) =>
        fetch(`${stack.urls[name]}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
          (r) => r.status === 200,
          () => false,
        ),
      ),
    );
    return answers.every(Boolean);
  };
  /**
   * Which services are not ready and why: /readyz names the failing checks (up/down only,
   * it is a public port); `<service>.v1.health` over NATS gives each check's detail.
   */
  const whyNotReady = async () => {
    const lines = [];
    for (const name of SERVICES) {
      const readyz = await fetch(`${stack.urls[name]}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
        async (r) => (r.status === 200 ? undefined : `${r.status} ${JSON.stringify(await r.json().catch(() => null))}`),
        (error) => `no answer (${error?.cause?.code ?? error?.name})`,
      );
      if (readyz === undefined) continue;
      const details = await client.request(rpc.health[name], {}, { timeoutMs: 2_000 }).then(
        (h) =>
          h.checks
            .filter((c) => !c.up)
            .map((c) => `${c.name}: ${c.detail}`)
            .join('; '),
        (error) => `health over NATS failed: ${error?.code ?? error?.message}`,
      );
      const logTail = (stack.processes[name]?.lastLines() ?? []).slice(-5).map((l) => `    ${l}`);
      lines.push(`${name}: /readyz ${readyz}; ${details}`, ...logTail);
    }
    return lines.join('\n  ');
  };
  const waitAllReady = async (timeoutMs) => {
    try {
      await waitFor('every service ready', allReady, timeoutMs, 100);
    } catch (error) {
      throw new Error(`${error.message}; not ready:\n  ${await whyNotReady()}`, { cause: error });
    }
  };

  // --- the faults, one at a time --------------------------------------------------------
  const faults = [
    ...SERVICES.map((name) => ({
      name: `SIGKILL ${name}`,
      async inject() {
        await stack.processes[name].kill('SIGKILL');
        await sleep(1_000);
        await stack.restart(name);
      },
    })),
    {
      name: 'restart nats-server',
      async inject() {
        await nats.stop(30_000);
        nats = await startNats();
      },
    },
    {
      name: 'restart Postgres',
      async inject() {
        await postgres.stop();
        postgres = await ensurePostgres(databaseUrl, pgDir, { log });
      },
    },
  ];
  // FAULTS_ONLY=postgres,nats runs only the faults whose names contain one of the words
  // (to chase one failure); the full table needs them all.
  const only = (process.env.FAULTS_ONLY ?? '').toLowerCase().split(',').filter(Boolean);
  const chosen = only.length === 0 ? faults : faults.filter((f) => only.some((w) => f.name.toLowerCase().includes(w)));
  const results = [];
  await sleep(SETTLE_MS);
  for (const fault of chosen) {
    const startedAt = Date.now();
    say(`${fault.name}`);
    const revoking = revokeOne();
    await fault.inject();
    await waitAllReady(120_000);
    const readyAt = Date.now();
    await revoking;
    await sleep(SETTLE_MS);
    results.push({ fault: fault.name, startedAt, readyAt, endedAt: Date.now() });
  }
  running = false;
  await Promise.all(loops);

  // --- the verdict ---------------------------------------------------------------------
  // Sync: after the last change, one more run must leave exactly the source's state.
  say('load stopped; a last sync run, then the audit log is read');
  // No run in progress (nor queued) before the last one is asked for: a run that started
  // before the last source change and ended after `before` must not pass for it.
  await waitFor(
    'the sync of the main connection to be idle',
    async () => (await syncState(main))?.state === 'idle',
    180_000,
    500,
  );
  const before = Date.now();
  await waitFor(
    'a final sync run to start',
    async () => {
      const r = await fetch(`${gatewayUrl}/v1/connections/${main}/sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}` },
      });
      return r.status < 300;
    },
    30_000,
    500,
  );
  await synced(main, 180_000, before);
  const source = (await sim.control.list('faults-main', 'repos')).items;
  const stored = [];
  let cursor;
  do {
    const res = await fetch(
      `${gatewayUrl}/v1/connections/${main}/records?type=code.repository&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      { headers: { authorization: `Bearer ${apiKey}` } },
    );
    if (!res.ok) throw new Error(`reading records: ${res.status} ${await res.text()}`);
    const page = await res.json();
    stored.push(...page.records);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  const live_ = stored.filter((r) => !r.deleted);
  const byId = new Map();
  for (const r of live_) byId.set(r.externalId, (byId.get(r.externalId) ?? 0) + 1);
  const duplicatedRecords = [...byId.values()].filter((n) => n > 1).length;
  const sourceIds = new Set(source.map((item) => String(item.id)));
  const lostRecords = [...sourceIds].filter((id) => !byId.has(id)).length;
  const extraRecords = [...byId.keys()].filter((id) => !sourceIds.has(id)).length;
  const staleRecords = source.filter((item) => {
    const record = live_.find((r) => r.externalId === String(item.id));
    return record && (record.data?.description ?? null) !== (item.description ?? null);
  }).length;

  // Audit: wait until the writer has drained the stream (the count stops moving).
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const auditRows = async () =>
    (
      await db.query(
        `SELECT convert_from(entry, 'UTF8')::jsonb #>> '{event,requestId}' AS request_id,
                coalesce(convert_from(entry, 'UTF8')::jsonb #>> '{event,phase}', '') AS phase,
                count(*)::int AS n
           FROM audit.audit_entries GROUP BY 1, 2`,
      )
    ).rows;
  let rows = [];
  let previous = -1;
  for (let stable = 0; stable < 3;) {
    rows = await auditRows();
    const total = rows.reduce((sum, row) => sum + row.n, 0);
    stable = total === previous ? stable + 1 : 0;
    previous = total;
    await sleep(1_000);
  }
  await db.end();
  const outcomes = new Map();
  for (const row of rows) {
    if (row.phase.includes('INTENT')) continue;
    outcomes.set(row.request_id, (outcomes.get(row.request_id) ?? 0) + row.n);
  }
  // Acknowledged: the gateway answered (an allow or a denial), not a 5xx nor a dropped connection.
  const acknowledged = requests.filter((r) => r.status > 0 && r.status < 500);
  // POST /v1/connections/{id}/sync is not an audited route (it reads and returns no user
  // data; its runs' writes are the sync's): only the audited routes count here.
  const unaudited = acknowledged.filter((r) => r.kind !== 'sync' && !outcomes.has(r.requestId));
  const duplicated = requests.filter((r) => (outcomes.get(r.requestId) ?? 0) > 1);
  const allowedAfterRevoke = requests.filter(
    (r) =>
      r.kind === 'query' &&
      r.status === 200 &&
      revokedAt.has(r.connectionId) &&
      r.startedAt > revokedAt.get(r.connectionId),
  );

  const failedIn = (from, to) =>
    requests.filter((r) => r.startedAt >= from && r.startedAt < to && (r.status === 0 || r.status >= 500));
  const sentIn = (from, to) => requests.filter((r) => r.startedAt >= from && r.startedAt < to);
  const rowsOut = results.map((r) => ({
    fault: r.fault,
    'ready again (s)': ((r.readyAt - r.startedAt) / 1000).toFixed(1),
    'requests failed': `${failedIn(r.startedAt, r.endedAt).length} / ${sentIn(r.startedAt, r.endedAt).length}`,
  }));
  console.log('\nPer fault (requests failed = 5xx or no answer, from the fault until the next one):');
  console.table(rowsOut);
  const figures = {
    'acknowledged requests without an audit entry': unaudited.length,
    'duplicate audit entries': duplicated.length,
    'requests allowed after a revoke returned': allowedAfterRevoke.length,
    'records lost by sync': lostRecords,
    'records duplicated by sync': duplicatedRecords,
    'records at the gateway the source no longer has': extraRecords,
    'records stale after the last sync': staleRecords,
  };
  console.log(
    `\nLoad: ${requests.length} requests (${acknowledged.length} acknowledged), ${revokedAt.size} revocations, ` +
      `${changes} source changes (webhooks), ${source.length} repositories at the source, ${live_.length} at the gateway.`,
  );
  console.table(Object.entries(figures).map(([figure, value]) => ({ figure, value, goal: 0 })));
  const examples = {
    unaudited,
    duplicated,
    allowedAfterRevoke,
    lostRecords: [...sourceIds].filter((id) => !byId.has(id)).map((id) => source.find((i) => String(i.id) === id)),
  };
  for (const [name, list] of Object.entries(examples)) {
    if (list.length > 0)
      console.log(`${name}, first ones:`, JSON.stringify(list.slice(0, 5).map((r) => ({ ...r, body: undefined }))));
  }
  exitCode = Object.values(figures).every((v) => v === 0) ? 0 : 1;
} catch (error) {
  console.error(error);
} finally {
  const logFile = join(rootDir, 'test-results', 'faults.log');
  try {
    writeFileSync(logFile, logLines.join('\n'));
    say(`services' logs: ${logFile}`);
  } catch {
    // test-results/ may be missing; the logs are only for post-mortems
  }
  await nc?.close().catch(() => undefined);
  await stack.stop().catch(() => undefined);
  await nats.stop(10_000).catch(() => undefined);
  await postgres.stop().catch(() => undefined);
  await sim.stop().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(exitCode);
