// node test-e2e/bench/sync-incremental.bench.mjs [connectors dist dir] — what the GitHub
// connector's incremental runs cost the sync-worker, in CPU per run, in a process of their own
// (the source simulator runs in this one): a first sync of BENCH_SYNC_REPOS repositories,
// then BENCH_SYNC_RUNS pairs of incremental runs against the same data:
//   - as stored: the cursor the previous run returned (pages answer 304, one full last page 200);
//   - every page changed: the same cursor without its ETags, so every page is a 200 whose
//     records are normalized and written (what a run pays where every page changed).
// Nothing is stored (the writes are counted and let go): this is the connector's own work.
// The dist argument (default libs/connectors/dist) lets a build of main be set against this one.
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const REPOS = Number(process.env.BENCH_SYNC_REPOS ?? 20_000);
const RUNS = Number(process.env.BENCH_SYNC_RUNS ?? 3);

if (process.env.BENCH_INCREMENTAL_CHILD) {
  const { dist, url, token } = JSON.parse(process.env.BENCH_INCREMENTAL_CHILD);
  const { GithubConnector } = await import(pathToFileURL(resolve(dist, 'index.js')).href);
  let written = 0;
  const ctx = {
    baseUrl: url,
    tokens: { current: async () => token, refresh: async () => token },
    emit: async (batch) => void (written += batch.upserts.length),
    skip: () => undefined,
  };
  const connector = new GithubConnector();
  const withoutEtags = (cursor) =>
    JSON.parse(JSON.stringify(cursor, (key, value) => (key === 'etag' || key === 'profileEtag' ? undefined : value)));
  const run = async (cursor) => {
    written = 0;
    const c0 = process.cpuUsage();
    const next = await connector.sync(ctx, cursor);
    const c = process.cpuUsage(c0);
    return { next, cpuMs: (c.user + c.system) / 1000, written };
  };
  const first = await run(null);
  const rows = [{ run: 'first sync', cpuMs: first.cpuMs, written: first.written }];
  for (let i = 0; i < RUNS; i++) {
    const stored = await run(first.next);
    rows.push({ run: 'incremental, as stored', cpuMs: stored.cpuMs, written: stored.written });
    const changed = await run(withoutEtags(first.next));
    rows.push({ run: 'incremental, every page changed', cpuMs: changed.cpuMs, written: changed.written });
  }
  process.stdout.write(JSON.stringify(rows));
  process.exit(0);
}

const { obtainTokens, startSimulator } = await import('@context-gateway/source-simulators');
const dist = resolve(process.argv[2] ?? 'libs/connectors/dist');
const sim = await startSimulator({ provider: 'github', rateLimit: 10_000_000 });
try {
  await sim.control.createAccount({ login: 'bench-incremental', counts: { repos: REPOS, starred: 100, issues: 100 } });
  const tokens = await obtainTokens(sim, 'bench-incremental', ['repo', 'read:user']);
  const load = loadavg()[0].toFixed(1);
  // Asynchronously: the simulator answers from this process's event loop.
  const child = await promisify(execFile)(process.execPath, [fileURLToPath(import.meta.url)], {
    env: {
      ...process.env,
      BENCH_INCREMENTAL_CHILD: JSON.stringify({ dist, url: sim.url, token: tokens.access_token }),
    },
    maxBuffer: 1 << 20,
  });
  const rows = JSON.parse(child.stdout);
  console.log(`${dist}: ${REPOS} repositories, load average ${load} → ${loadavg()[0].toFixed(1)}`);
  for (const r of rows) console.log(`  ${r.run}: ${r.cpuMs.toFixed(0)} ms CPU, ${r.written} records written`);
} finally {
  await sim.stop();
}
