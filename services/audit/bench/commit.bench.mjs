// CPU per commit of the audit writer's append: the old statement sequence (BEGIN, the
// pg-copy-streams binary COPY, the nodes' INSERT … unnest, COMMIT: five round trips) against
// copyRowsBinaryCommitted (one simple query, COPY data in the same write). Same table shape as
// audit_entries / audit_nodes: 900-byte entry, 32-byte hash, one node per commit. Alternating
// rounds; medians [range]. Client CPU by process.cpuUsage, its Postgres backend's by
// /proc/<pg_backend_pid>/stat (same machine). Needs libs/database built (dist/).
//
//   ROWS=20 N=400 ROUNDS=5 node services/audit/bench/commit.bench.mjs
//   (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test; uses schema commit_bench)
import { readFileSync } from 'node:fs';

import { copyRowsBinary, copyRowsBinaryCommitted } from '@context-gateway/database';
import pg from 'pg';

const ROWS = Number(process.env.ROWS ?? 20);
const N = Number(process.env.N ?? 400);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const client = new pg.Client({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
});
await client.connect();
await client.query(
  'DROP SCHEMA IF EXISTS commit_bench CASCADE; CREATE SCHEMA commit_bench; SET search_path = commit_bench',
);
await client.query(
  'CREATE TABLE e (seq bigint PRIMARY KEY, body bytea, h bytea); CREATE TABLE n (level int, index bigint, hash bytea, PRIMARY KEY (level, index))',
);
const {
  rows: [{ pid }],
} = await client.query('SELECT pg_backend_pid() AS pid');
const CLK_TCK_MS = 10;
/** The backend's user + system CPU, ms. */
const backendMs = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * CLK_TCK_MS;
};
let reads = 0;
client.connection.stream.on('data', () => {
  reads += 1;
});

const cols = [
  { name: 'seq', type: 'int8' },
  { name: 'body', type: 'bytea' },
  { name: 'h', type: 'bytea' },
];
const body = Buffer.alloc(900, 7);
const h = Buffer.alloc(32, 1);
let seq = 0;
let nodeIndex = 0;

async function before(rows, nodes) {
  await client.query('BEGIN');
  await copyRowsBinary(client, 'e', cols, rows);
  await client.query('INSERT INTO n (level, index, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])', [
    nodes.map(() => 8),
    nodes,
    nodes.map(() => h),
  ]);
  await client.query('COMMIT');
}
async function after(rows, nodes) {
  const values = nodes.map((x) => `(8, ${x}, decode('${h.toString('hex')}', 'hex'))`).join(', ');
  await copyRowsBinaryCommitted(client, 'e', cols, rows, `INSERT INTO n (level, index, hash) VALUES ${values}`);
}

const results = { before: [], after: [] };
for (let round = 0; round < ROUNDS; round++)
  for (const [name, append] of [
    ['before', before],
    ['after', after],
  ]) {
    const c0 = process.cpuUsage();
    const b0 = backendMs();
    const r0 = reads;
    for (let i = 0; i < N; i++) {
      const rows = Array.from({ length: ROWS }, () => [seq++, body, h]);
      await append(rows, [nodeIndex++]);
    }
    const c = process.cpuUsage(c0);
    results[name].push({
      clientUs: (c.user + c.system) / N,
      backendUs: ((backendMs() - b0) * 1000) / N,
      readsPerCommit: (reads - r0) / N,
    });
  }

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `load ${readFileSync('/proc/loadavg', 'utf8').trim()} | rows/commit ${ROWS}, commits/round ${N}, rounds ${ROUNDS}`,
);
for (const name of ['before', 'after']) {
  const figure = (key) => {
    const v = results[name].map((r) => r[key]);
    return `${median(v).toFixed(1)} [${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}]`;
  };
  console.log(
    `${name}: client µs/commit ${figure('clientUs')} | backend µs/commit ${figure('backendUs')} | socket reads/commit ${figure('readsPerCommit')}`,
  );
}
await client.query('DROP SCHEMA commit_bench CASCADE');
await client.end();
