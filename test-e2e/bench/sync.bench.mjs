// pnpm bench:sync — how fast the sync path is, end to end:
//   1. throughput: records/s from an unthrottled GitHub simulator through the sync-worker
//      into a Personal Server (the INITIAL sync of a large account: every page fetched,
//      normalized, encrypted and committed, counted by the worker);
//   2. freshness: seconds from a change at the source to the record being queryable by an
//      app through GET /v1/connections/{id}/records, with webhooks (no polling schedule).
// Runs the stack from dist/ (pnpm build first) with a private database and nats-server.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

import { fromBinary } from '@bufbuild/protobuf';
import { RpcClient } from '@context-gateway/messaging';
import { events, rpc } from '@context-gateway/proto';
import { obtainTokens, startSimulator } from '@context-gateway/source-simulators';
import pg from 'pg';

import { renderFlameGraph } from '../../scripts/flamegraph.mjs';
import {
  natsServerPids,
  processTicksMs,
  startBenchStack,
  TICK_MS,
} from '../../services/personal-server/bench/bench-stack.mjs';
import { connectAccount } from '../support/connect-account.mjs';
import { signUpWithSoftPasskey } from '../support/soft-passkey.mjs';

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

// A large account: a run long enough (~10 s) that the rate is the sustained one, not the ramp.
const REPOS = Number(process.env.BENCH_SYNC_REPOS ?? 100_000);
const WARM_SOURCE = process.env.BENCH_SYNC_WARM_SOURCE !== '0';
const FRESHNESS_SAMPLES = Number(process.env.BENCH_SYNC_SAMPLES ?? 10);
const CLIENT_ID = 'bench-github';
const CLIENT_SECRET = 'bench-github-secret-0123456789';
const WEBHOOK_SECRET = 'bench-webhook-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos', 'github:read:stars', 'github:read:issues'];
const CALLBACK = 'http://127.0.0.1:9/bench-callback';
const OPERATOR_TOKEN = 'bench-operator-token-0123456789abcdef0123456789';

// BENCH_PROFILE_DIR=<dir>: every service runs with --cpu-prof into <dir>, and flame graphs of
// the sync-worker, the shard and (when this script itself runs with `node --cpu-prof
// --cpu-prof-dir=<dir>`) the source simulator, over the big run's window, are written there.
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : undefined;
if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
let profileWindow;

/** CPU (user + system) of the processes, ms; an exited one counts 0. */
function processCpuMs(pids) {
  let ms = 0;
  for (const pid of pids) ms += processTicksMs(pid) ?? 0;
  return ms;
}
/** Busy CPU of the whole machine (every process, all cores), ms. */
function machineBusyMs() {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = values.map(Number);
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}
/**
 * The processes a sync run uses, by role. Postgres twice: the bench database's backends, and
 * the server's background processes (WAL writer, checkpointer…), which also serve whatever
 * else uses that server (other work on a shared machine).
 */
async function runPids() {
  const db = new pg.Client({ connectionString: bench.databaseUrl });
  await db.connect();
  const { rows } = await db
    .query(
      `SELECT pid, datname IS NULL AS background FROM pg_stat_activity
        WHERE (datname = current_database() OR datname IS NULL) AND pid <> pg_backend_pid()`,
    )
    .finally(() => db.end());
  const { processes, shards } = bench.stack;
  return {
    'sync-worker': [processes['sync-worker'].child.pid],
    'personal-server': [processes['personal-server'], ...shards].map((p) => p.child.pid),
    postgres: rows.filter((r) => !r.background).map((r) => r.pid),
    'postgres background (shared)': rows.filter((r) => r.background).map((r) => r.pid),
    'nats-server': natsServerPids(bench.natsUrl),
    'source simulator (this process)': [process.pid],
    gateway: [processes.gateway.child.pid],
    'connection-broker': [processes['connection-broker'].child.pid],
  };
}
/** CPU so far of each process of each role, ms, by pid. */
function cpuByPid(pids) {
  return new Map(Object.values(pids).flatMap((list) => list.map((pid) => [pid, processCpuMs([pid])])));
}
/** CPU over the run by role; a process that appeared during it (a new Postgres backend) counts from zero. */
function cpuDuring(pids, before) {
  return Object.fromEntries(
    Object.entries(pids).map(([name, list]) => [
      name,
      list.reduce((sum, pid) => sum + processCpuMs([pid]) - (before.get(pid) ?? 0), 0),
    ]),
  );
}

/** Every page of the account's repositories, one after another as the connector asks; how many items. */
async function walkRepos(accessToken) {
  let url = `${sim.url}/user/repos?per_page=100&sort=full_name`;
  let fetched = 0;
  while (url) {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/vnd.github+json' },
    });
    fetched += (await res.json()).length;
    url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return fetched;
}

const sim = await startSimulator({ provider: 'github', rateLimit: 10_000_000 });
const bench = await startBenchStack('sync', {
  OPERATOR_TOKEN,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
  INTEGRATION_GITHUB_BASE_URL: sim.url,
  INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
  INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
  GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
  SYNC_INTERVAL_MS: '3600000',
  // The bench's own status reads and its freshness polls (every 20 ms) are not what is measured.
  RATE_LIMIT_PER_KEY: '100000000',
  RATE_LIMIT_PER_IP: '100000000',
  ...(PROFILE_DIR ? { STACK_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}`, STACK_BUNDLE: '0' } : {}),
}).catch(async (error) => {
  await sim.stop();
  throw error;
});
const { nc } = bench;
const stack = { gatewayUrl: bench.stack.urls.gateway };
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
  // The bench's own status reads: each is an audited API request (gateway, broker, sync-worker,
  // their Postgres backends), counted so that the output can say how many fell in the run.
  let statusPolls = 0;
  const syncState = async (connectionId) => {
    statusPolls++;
    const s = await api(`/v1/connections/${connectionId}/sync`);
    if (s.state === 'failed' || s.state === 'needs_reauth') throw new Error(`sync ${s.state}: ${s.lastError}`);
    return s;
  };
  // The run's end is the server's own lastSuccessAt. Read when the awaited connection's run
  // announces its end (sync.v1.events.run_finished, decoded, seen here as a plain subscriber),
  // and once a second in case that announcement is lost: the API is not polled every 100 ms
  // through the measured run. An announcement that comes during a read is kept for the wait
  // after it (`announced`), not lost.
  let awaited;
  let announced = false;
  let wake;
  const runFinished = nc.subscribe(events.syncRunFinished.subject, {
    callback: (error, m) => {
      if (error || fromBinary(events.syncRunFinished.message, m.data).connectionId !== awaited) return;
      announced = true;
      wake?.();
    },
  });
  const nextRead = () =>
    new Promise((resolve) => {
      if (announced) return resolve('its event');
      const timer = setTimeout(() => {
        wake = undefined;
        resolve('the 1 s timer');
      }, 1_000);
      wake = () => {
        wake = undefined;
        clearTimeout(timer);
        resolve('its event');
      };
    });
  // A passing API error (a 503, a reset connection) is read again, up to 3 in a row.
  const synced = async (connectionId, timeoutMs) => {
    awaited = connectionId;
    const deadline = Date.now() + timeoutMs;
    let seenBy = 'the first read';
    let failures = 0;
    for (;;) {
      announced = false;
      const s = await syncState(connectionId).catch((error) => {
        if (/^sync (failed|needs_reauth)/.test(error.message) || ++failures > 3) throw error;
        return undefined;
      });
      if (s) failures = 0;
      if (s?.state === 'idle' && s.lastSuccessAt) return { ...s, seenBy };
      if (Date.now() > deadline) throw new Error('timed out waiting for the sync');
      seenBy = await nextRead();
    }
  };

  // A typical account first: it warms the stack up (JIT, connections, keys) the way a
  // running deployment is warm, and is the account the freshness part changes.
  await sim.control.createAccount({ login: 'bench-small', counts: { repos: 150, starred: 50, issues: 20 } });
  const small = await connectGithub('bench-small');
  await synced(small, 60_000);

  // 1. Throughput.
  const seedStarted = Date.now();
  await sim.control.createAccount({ login: 'bench-big', counts: { repos: REPOS, starred: 100, issues: 100 } });
  console.log(`seeded ${REPOS} repositories in ${Date.now() - seedStarted} ms`);
  if (WARM_SOURCE) {
    // The simulator renders an item's JSON the first time it serves it and keeps the bytes.
    // That rendering is the source's work (GitHub's, on GitHub's machines), not the sync's,
    // yet here it would take the same two cores: one walk before the run does it, so the run
    // and "source alone" below both meet a warm source. BENCH_SYNC_WARM_SOURCE=0: a cold one.
    const tokens = await obtainTokens(sim, 'bench-big', ['repo', 'read:user']);
    const w0 = performance.now();
    const walked = await walkRepos(tokens.access_token);
    const ws = (performance.now() - w0) / 1000;
    console.log(`  the source's first walk (rendering): ${walked} repositories in ${ws.toFixed(2)} s, not timed`);
    await sim.control.resetCounters();
  }
  // CPU per process over the run (the machine is shared: CPU per record says more than a rate).
  const cpu0 = cpuByPid(await runPids());
  const busy0 = machineBusyMs();
  const t0 = performance.now();
  const big = await connectGithub('bench-big');
  const connected = Date.now();
  // The connect flow's CPU: the gateway's and the broker's only, read from /proc for pids
  // already known (no Postgres query here: it would delay the run's first status read).
  const connectCpu = Object.fromEntries(
    ['gateway', 'connection-broker'].map((name) => {
      const pid = bench.stack.processes[name].child.pid;
      return [name, processCpuMs([pid]) - cpu0.get(pid)];
    }),
  );
  // The run itself, on the services' clock (the same machine's): from the sending of the first
  // status read that shows it running (polled every 5 ms; the send, not the answer, so that the
  // bound errs against the bench) to the server's lastSuccessAt.
  const pollsBefore = statusPolls;
  const running = await waitFor('the run to start', async () => {
    const sentAt = Date.now();
    const s = await syncState(big);
    return s.state === 'running' || s.lastSuccessAt ? sentAt : undefined;
  });
  const startPolls = statusPolls - pollsBefore;
  const runStartUs = monotonicUs();
  const state = await synced(big, 600_000);
  runFinished.unsubscribe();
  const runPolls = statusPolls - pollsBefore - startPolls;
  const busy = machineBusyMs() - busy0;
  const cpu = cpuDuring(await runPids(), cpu0);
  profileWindow = {
    fromUs: runStartUs,
    toUs: monotonicUs(),
    pids: {
      'sync-worker': bench.stack.processes['sync-worker'].child.pid,
      'personal-server': bench.stack.processes['personal-server'].child.pid,
      'source-simulator': process.pid,
    },
  };
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
  const perThousand = (ms) => +((ms / Number(state.recordsSynced)) * 1000).toFixed(1);
  const attributed = Object.values(cpu).reduce((a, b) => a + b, 0);
  console.log(
    `  CPU ms per 1,000 records by process (load average ${loadavg()[0].toFixed(1)}):`,
    {
      ...Object.fromEntries(Object.keys(cpu).map((name) => [name, perThousand(cpu[name])])),
      'the rest of the machine': perThousand(busy - attributed),
    },
    `machine (every process, other work too): ${perThousand(busy)}`,
  );
  // Counted above, shown apart: the connect flow is once per connection, not per record (the
  // worker's and Postgres's share of it cannot be told from the run's start, which overlaps it).
  console.log(
    `  of which the connect flow (sign-up, OAuth, grant; once per connection), ms of CPU: ` +
      `gateway ${Math.round(connectCpu.gateway)}, connection-broker ${Math.round(connectCpu['connection-broker'])};` +
      ` and the bench's own status reads through the API: ${startPolls} until the run showed as running (every 5 ms),` +
      ` ${runPolls} during it (on its end event, else once a second; the end seen through ${state.seenBy});` +
      ` the read that showed it running was sent ${running - connected} ms after the connect flow returned`,
  );

  // Where the time goes: the source alone (the same pages, fetched one after another as the
  // connector does) and the Personal Server's write path alone (the same number of records
  // in 500-record writes to one connection, as the worker sends them).
  const token = await client.request(rpc.broker.getAccessToken, { connectionId: big });
  const s0 = performance.now();
  const fetched = await walkRepos(token.accessToken);
  const sourceSeconds = (performance.now() - s0) / 1000;
  console.log(
    `  source alone: ${fetched} repositories in ${sourceSeconds.toFixed(2)} s = ${Math.round(fetched / sourceSeconds)} records/s`,
  );
  const encoder = new TextEncoder();
  for (const inFlight of [1, 4]) {
    // The store's own CPU for these writes: the shards and their Postgres backends.
    const storePids = await runPids();
    const storeCpu0 = cpuByPid(storePids);
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
    const storeCpu = cpuDuring(await runPids(), storeCpu0);
    const per1k = (ms) => +((ms / written) * 1000).toFixed(1);
    console.log(
      `  Personal Server writes alone (${inFlight} in flight): ${written} records in ${ws.toFixed(2)} s = ${Math.round(written / ws)} records/s;` +
        ` CPU ms per 1,000 records: personal-server ${per1k(storeCpu['personal-server'])}, postgres ${per1k(storeCpu.postgres)}`,
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
  await bench.stop();
  await sim.stop();
}

// The services wrote their profiles as they exited. This process (the source simulator)
// writes its own only after it exits, so that one is drawn by hand with the window printed.
if (PROFILE_DIR && profileWindow) {
  const { fromUs, toUs, pids } = profileWindow;
  const files = readdirSync(PROFILE_DIR).filter((f) => f.endsWith('.cpuprofile'));
  for (const [name, pid] of Object.entries(pids)) {
    const out = join(PROFILE_DIR, `flame-sync-${name}.svg`);
    const file = files.find((f) => f.split('.')[3] === String(pid));
    if (!file) {
      console.log(
        `${name} (pid ${pid}): node scripts/flamegraph.mjs ${PROFILE_DIR}/CPU.*.${pid}.*.cpuprofile --from-us ${fromUs} --to-us ${toUs} > ${out}`,
      );
      continue;
    }
    const title = `${name}, the INITIAL sync of ${REPOS} repositories`;
    const profile = JSON.parse(readFileSync(join(PROFILE_DIR, file), 'utf8'));
    writeFileSync(out, renderFlameGraph(profile, { fromUs, toUs, title }));
    console.log(`flame graph: ${out}`);
  }
}
