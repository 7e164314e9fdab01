// pnpm bench:reupload — a Personal Server's write path on a first upload and on the same
// data uploaded again (a re-imported export, a re-sync that finds nothing new).
//
// Starts the whole stack from dist/ (fresh database, private nats-server) and writes N
// Netflix-shaped watch events to one connection in batches over ps.v1.write_records — what
// the sync-worker does for an import — first into an empty connection, then the same N
// again, twice: before the records table has planner statistics (the bench database is new,
// and this machine's Postgres runs with autovacuum off) and after an ANALYZE of it (as
// autovacuum does about one naptime after a table's first rows: production's regime).
// Prints records/s of each, the ratio, and CPU per 1,000 records. The gateway's CSV parsing and the
// sync-worker's forwarding are the same for both uploads, so they are left out.
//
//   BENCH_RECORDS=50000 BENCH_BATCH=500 pnpm bench:reupload
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RpcClient } from '@context-gateway/messaging';
import { RecordInputSchema, rpc } from '@context-gateway/proto';
import pg from 'pg';

import { processTicksMs, startBenchStack } from './bench-stack.mjs';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 50_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 500);

console.log('starting the stack …');
const bench = await startBenchStack('reupload', { SHARD_COUNT: '1' });
try {
  const { nc } = bench;
  const client = new RpcClient(nc);
  const userId = randomUUID();
  const connectionId = randomUUID();
  const started = Date.UTC(2024, 0, 1);
  // One row of a ViewingActivity.csv as the importer maps it (media.play_event).
  const record = (i) =>
    create(RecordInputSchema, {
      type: 'media.play_event',
      externalId: `watch-${i}`,
      dataJson: Buffer.from(
        JSON.stringify({
          source: 'netflix',
          trackId: `title-${i % 3000}`,
          title: `Series ${i % 300}: Season ${1 + (i % 5)}: Episode ${i % 12} "A long enough episode title"`,
          kind: 'episode',
          playedAt: new Date(started + i * 3_600_000).toISOString(),
          durationMs: 1_200_000 + (i % 7) * 60_000,
          device: 'Living room TV',
          profile: 'Alex',
          series: `Series ${i % 300}`,
          season: 1 + (i % 5),
          episode: i % 12,
        }),
      ),
      sourceUpdatedAt: timestampFromDate(new Date(started + i * 3_600_000)),
    });
  const batches = [];
  for (let at = 0; at < RECORDS; at += BATCH)
    batches.push(Array.from({ length: Math.min(BATCH, RECORDS - at) }, (_, k) => record(at + k)));
  /** The Personal Server's processes and the bench database's Postgres backends, by pid. */
  const storePids = async () => {
    const db = new pg.Client({ connectionString: bench.databaseUrl });
    await db.connect();
    const { rows } = await db
      .query('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')
      .finally(() => db.end());
    const { processes, shards = [] } = bench.stack;
    return {
      server: [processes['personal-server'], ...shards].map((p) => p.child.pid),
      postgres: rows.map((r) => r.pid),
    };
  };
  const cpuByPid = (pids) => new Map([...pids.server, ...pids.postgres].map((pid) => [pid, processTicksMs(pid) ?? 0]));
  /** CPU ms of each role since `before`; a backend opened since counts from zero. */
  const cpuSince = (pids, before) => {
    const sum = (list) => list.reduce((ms, pid) => ms + (processTicksMs(pid) ?? 0) - (before.get(pid) ?? 0), 0);
    return { server: sum(pids.server), postgres: sum(pids.postgres) };
  };
  const upload = async (label) => {
    const cpu0 = cpuByPid(await storePids());
    const t0 = performance.now();
    const totals = { written: 0, unchanged: 0 };
    for (const records of batches) {
      const res = await client.request(
        rpc.personalServer.writeRecords,
        { userId, connectionId, integration: 'netflix', records, syncedAt: timestampFromDate(new Date()) },
        { timeoutMs: 60_000 },
      );
      totals.written += res.written;
      totals.unchanged += res.unchanged;
    }
    const seconds = (performance.now() - t0) / 1000;
    const rate = RECORDS / seconds;
    const cpu = cpuSince(await storePids(), cpu0);
    const per1k = (ms) => +((ms / RECORDS) * 1000).toFixed(1);
    console.log(
      `${label}: ${RECORDS.toLocaleString('en')} records in ${seconds.toFixed(2)} s, ${Math.round(rate).toLocaleString('en')} records/s (written ${totals.written}, unchanged ${totals.unchanged});` +
        ` CPU ms per 1,000 records: personal-server ${per1k(cpu.server)}, postgres ${per1k(cpu.postgres)}`,
    );
    return { seconds, rate, ...totals, serverCpuPer1k: per1k(cpu.server), postgresCpuPer1k: per1k(cpu.postgres) };
  };
  console.log(
    `write path: ${RECORDS.toLocaleString('en')} watch events in batches of ${BATCH}, one connection; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const first = await upload('first upload');
  const again = await upload('re-upload (same data), no statistics');
  const db = new pg.Client({ connectionString: bench.databaseUrl });
  await db.connect();
  await db.query('ANALYZE personal_server.records').finally(() => db.end());
  const analyzed = await upload('re-upload (same data), after ANALYZE of the records table');
  for (const run of [again, analyzed])
    if (run.unchanged !== RECORDS) throw new Error(`re-upload changed ${RECORDS - run.unchanged} records`);
  console.log(
    `re-upload / first upload time: ${(again.seconds / first.seconds).toFixed(2)} without statistics, ${(analyzed.seconds / first.seconds).toFixed(2)} with`,
  );
  console.log(
    JSON.stringify({
      bench: 'reupload',
      records: RECORDS,
      batch: BATCH,
      firstRecordsPerSec: Math.round(first.rate),
      reuploadRecordsPerSec: Math.round(again.rate),
      reuploadTimeRatio: Number((again.seconds / first.seconds).toFixed(2)),
      reuploadAnalyzedTimeRatio: Number((analyzed.seconds / first.seconds).toFixed(2)),
      cpuMsPer1k: {
        first: { personalServer: first.serverCpuPer1k, postgres: first.postgresCpuPer1k },
        reuploadNoStatistics: { personalServer: again.serverCpuPer1k, postgres: again.postgresCpuPer1k },
        reuploadAnalyzed: { personalServer: analyzed.serverCpuPer1k, postgres: analyzed.postgresCpuPer1k },
      },
    }),
  );
} finally {
  await bench.stop();
}
