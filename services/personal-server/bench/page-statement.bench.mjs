// The query path's page statement alone: RecordsRepository#page as RecordsService#query calls
// it (one type, 20 records, from the start), from each checkout's dist/ in turn, against one
// seeded schema of the local Postgres, so two builds are compared in one process on the same rows.
//
//   node services/personal-server/bench/page-statement.bench.mjs <checkout> [<checkout> …]
//
// Each checkout gets its own pool (10 connections, as a shard's) and runs PAGES pages per round
// with CONCURRENCY in flight (closed loop), the checkouts alternating within a round and their
// order reversed every other round. Prints per page: the Node process's CPU (process.cpuUsage:
// its threads, GC included; only one checkout runs at a time) and its Postgres backends' CPU
// (/proc/<pid>/schedstat of each pool connection's backend), min, median and max over ROUNDS,
// then each round's figure.
// The checkouts' pages must be the same, or it stops.
//
// Env: ROUNDS (4), PAGES (4000), CONCURRENCY (8), CONNECTIONS (20 seeded connections),
// RECORDS (100 per connection), TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

import { createPool } from '@context-gateway/database';
import { createTestSchema } from '@context-gateway/database/testing';

import { pageQuery, seedPageShard } from './page-seed.mjs';

const roots = process.argv.slice(2).map((root) => resolve(root));
if (roots.length === 0) {
  console.error('usage: page-statement.bench.mjs <checkout> [<checkout> …] (each built: pnpm build)');
  process.exit(1);
}
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const PAGES = Number(process.env.PAGES ?? 4000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 20);
const RECORDS = Number(process.env.RECORDS ?? 100);

const schema = await createTestSchema({
  prefix: 'bench_page',
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
});

/**
 * CPU ns so far of each given process still there (/proc/<pid>/schedstat: time on a CPU, in
 * ns). A backend whose connection was closed (an error, a Postgres restart) is gone: skipped.
 */
function processCpuNs(pids) {
  const ns = new Map();
  for (const pid of pids) {
    try {
      ns.set(pid, Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]));
    } catch (error) {
      if (error.code !== 'ENOENT' && error.code !== 'ESRCH') throw error;
    }
  }
  return ns;
}

/**
 * CPU ns the backends used between two readings, and how many were restarted: one gone by the
 * second reading is left out (its last CPU cannot be read) and counted; one new since the
 * first (the pool's replacement) counts whole.
 */
function cpuBetween(before, after) {
  let ns = 0;
  let restarts = 0;
  for (const [pid, start] of before) {
    const end = after.get(pid);
    if (end === undefined) restarts += 1;
    else ns += end - start;
  }
  for (const [pid, end] of after) if (!before.has(pid)) ns += end;
  return { ns, restarts };
}

/** Each checkout's pool, ended before the schema is dropped, also when a check fails. */
const builds = [];
try {
  const { org, app, connections } = await seedPageShard(schema.pool, { connections: CONNECTIONS, records: RECORDS });

  for (const [i, root] of roots.entries()) {
    const { RecordsRepository } = await import(`${root}/services/personal-server/dist/records/records.repository.js`);
    const pool = createPool({ url: schema.url, schema: schema.schema, applicationName: `bench-page-${i}`, max: 10 });
    const backends = new Set();
    pool.on('connect', (client) => backends.add(client.processID));
    const repository = new RecordsRepository(pool, { now: () => Date.now(), date: () => new Date() });
    builds.push({ root, pool, backends, repository });
  }

  // Every checkout reads the same pages (and each opens its pool's connections).
  for (const connectionId of connections.slice(0, 3)) {
    const pages = [];
    for (const build of builds) pages.push(await build.repository.page(pageQuery({ org, app }, connectionId)));
    if (pages[0].records.length !== 20 || pages[0].grant?.state !== 'active')
      throw new Error('the seeded page is not what bench:query reads');
    if (pages.some((page) => !isDeepStrictEqual(page, pages[0]))) throw new Error('the checkouts read different pages');
  }

  /** `count` pages with CONCURRENCY in flight, spread over the seeded connections. */
  async function run(build, count) {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const n = next++;
        await build.repository.page(pageQuery({ org, app }, connections[n % connections.length]));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  }

  const results = new Map(builds.map((build) => [build.root, { node: [], postgres: [], restarts: 0 }]));
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    for (const build of order) {
      await run(build, PAGES / 4);
      const pgBefore = processCpuNs(build.backends);
      const start = process.cpuUsage();
      await run(build, PAGES);
      const used = process.cpuUsage(start);
      const { ns: pgNs, restarts } = cpuBetween(pgBefore, processCpuNs(build.backends));
      const result = results.get(build.root);
      result.node.push(+((used.user + used.system) / PAGES).toFixed(1));
      result.postgres.push(+(pgNs / 1000 / PAGES).toFixed(1));
      result.restarts += restarts;
    }
  }
  const summary = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = sorted.length % 2 === 1 ? sorted[mid] : +((sorted[mid - 1] + sorted[mid]) / 2).toFixed(1);
    return `min ${sorted[0]}, median ${median}, max ${sorted.at(-1)} (${values.join(' ')})`;
  };
  for (const [root, { node, postgres, restarts }] of results) {
    // A restarted backend's CPU in its last round is missing: its Postgres figures read low.
    const restarted = restarts > 0 ? `; ${restarts} backend(s) restarted, their last CPU not counted` : '';
    console.log(`${root}: Node µs/page ${summary(node)}; Postgres µs/page ${summary(postgres)}${restarted}`);
  }
} finally {
  for (const build of builds) await build.pool.end();
  await schema.drop();
}
