// What a grant cache in the shard would save Postgres per page (docs/perf/README.md, "The
// records query's grant lookup: a cache designed, not built", eighth session). Three
// statements, each on its own node-pg client (named, text, 1 in flight), against one seeded
// schema of the local Postgres:
//
// - `main`: the page statement as this checkout's built RecordsRepository#page sends it for one
//   type from the start (the grant, its connection and the server's shard looked up with the
//   page), in text here like the others (the shard reads its bytea columns in binary);
// - `lean`: what a cached grant would leave: the connection row by id (`last_version` stands
//   for a grant epoch column: a bigint of the same row) and the same page;
// - `bare`: the page alone.
//
//   node services/personal-server/bench/grant-lookup.bench.mjs   (after pnpm build)
//
// Prints each statement's backend CPU per execution (/proc/<pid>/schedstat), median and each
// round's figure; the statements alternate, order reversed every other round. In the warm-up,
// each statement's records must be main's (the same ids in the same order, every field equal),
// or it stops.
// Env: ROUNDS (6), EXECS (3000 per round), CONNECTIONS (100 seeded, as bench:query's shards),
// VARIANTS (main,lean,bare), TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

import { createTestSchema } from '@context-gateway/database/testing';
import pg from 'pg';

import { RecordsRepository } from '../dist/records/records.repository.js';
import { PAGE_TYPE, pageQuery, seedPageShard } from './page-seed.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const EXECS = Number(process.env.EXECS ?? 3000);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 100);
const RECORDS = 100;

const schema = await createTestSchema({
  prefix: 'bench_grant',
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
});

/** Each statement's client, ended before the schema is dropped, also when a check fails. */
const clients = new Map();
try {
  const { org, app, connections } = await seedPageShard(schema.pool, { connections: CONNECTIONS, records: RECORDS });

  /**
   * The page statement and its values as this checkout's built RecordsRepository#page sends them
   * (one type, from the start, 20 records), caught at its pool: always the real one, never a copy.
   */
  async function builtPageStatement(connectionId) {
    let caught;
    const pool = {
      query(submittable) {
        caught = submittable;
        return Promise.reject(new Error('caught'));
      },
    };
    const repository = new RecordsRepository(pool, { now: () => Date.now(), date: () => new Date() });
    await repository.page(pageQuery({ org, app }, connectionId)).catch(() => undefined);
    if (typeof caught?.text !== 'string' || !Array.isArray(caught.values))
      throw new Error('RecordsRepository#page no longer sends a PreparedRows with text and values');
    return { text: caught.text, values: caught.values };
  }
  const mainText = (await builtPageStatement(connections[0])).text;
  const mainValues = new Map();
  for (const connectionId of connections) mainValues.set(connectionId, (await builtPageStatement(connectionId)).values);

  const RECORD = `r.id, r.type, r.external_id, r.ciphertext, r.source_updated_at, r.updated_at, r.deleted_at IS NOT NULL AS deleted, r.version`;
  const RECORD_NULLS = `NULL::uuid AS id, NULL::text AS type, NULL::text AS external_id, NULL::bytea AS ciphertext,
         NULL::timestamptz AS source_updated_at, NULL::timestamptz AS updated_at, NULL::boolean AS deleted, NULL::bigint AS version`;
  const INNER = `SELECT r.id, r.type, r.external_id, r.ciphertext, r.source_updated_at, r.updated_at, r.deleted_at, r.version FROM records r`;
  const variants = {
    main: { text: mainText, values: (connectionId) => mainValues.get(connectionId), rows: 21 },
    lean: {
      text: `
  WITH c AS (
    SELECT c.synced_at, c.personal_server_id, c.user_id, c.data_key_id, c.records_version, c.last_version AS epoch
      FROM connections c WHERE c.id = $1
  )
  SELECT c.synced_at, c.personal_server_id, c.user_id, c.data_key_id, c.records_version, c.epoch, ${RECORD_NULLS}
    FROM c
  UNION ALL
  SELECT NULL, NULL, NULL, NULL, NULL, NULL, ${RECORD}
    FROM c, LATERAL (
      ${INNER}
       WHERE r.connection_id = $1 AND r.type = $2 AND r.version > $4 AND r.deleted_at IS NULL
       ORDER BY r.version LIMIT $3
    ) r`,
      values: (connectionId) => [connectionId, PAGE_TYPE, 20, 0],
      rows: 21,
    },
    bare: {
      text: `SELECT ${RECORD} FROM records r
   WHERE r.connection_id = $1 AND r.type = $2 AND r.version > $4 AND r.deleted_at IS NULL
   ORDER BY r.version LIMIT $3`,
      values: (connectionId) => [connectionId, PAGE_TYPE, 20, 0],
      rows: 20,
    },
  };

  /** The record columns of RECORD, as node-pg names them. */
  const RECORD_FIELDS = 'id type external_id ciphertext source_updated_at updated_at deleted version'.split(' ');
  /** A statement's record rows (the grant row has no record id), their fields only. */
  const recordsOf = (rows) =>
    rows.filter((row) => row.id !== null).map((row) => Object.fromEntries(RECORD_FIELDS.map((f) => [f, row[f]])));
  /** Main's records of each warm-up connection: what every variant must read. */
  const expected = new Map();
  for (const connectionId of connections.slice(0, 10)) {
    const { rows } = await schema.pool.query({ text: mainText, values: mainValues.get(connectionId) });
    const records = recordsOf(rows);
    if (records.length !== 20) throw new Error(`main read ${records.length} records, not 20`);
    expected.set(connectionId, records);
  }

  const names = (process.env.VARIANTS ?? 'main,lean,bare').split(',');
  for (const name of names) {
    const variant = variants[name];
    if (!variant) throw new Error(`no variant ${name} (main, lean, bare)`);
    const client = new pg.Client({ connectionString: schema.url, options: `-c search_path=${schema.schema}` });
    await client.connect();
    const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
    const execute = (connectionId) =>
      client.query({ name: `bench_${name}`, text: variant.text, values: variant.values(connectionId) });
    clients.set(name, { client, pid: rows[0].pid, execute });
    // Past the custom plans of the first executions, and each statement reads its page.
    for (const connectionId of connections.slice(0, 10)) {
      const { rows: page } = await execute(connectionId);
      if (page.length !== variant.rows) throw new Error(`${name} read ${page.length} rows, not ${variant.rows}`);
      if (!isDeepStrictEqual(recordsOf(page), expected.get(connectionId)))
        throw new Error(`${name} read other records than main for connection ${connectionId}`);
    }
  }

  /** CPU ns so far of one backend (/proc/<pid>/schedstat: time on a CPU). */
  const cpuNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

  const results = new Map(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const { pid, execute } = clients.get(name);
      const before = cpuNs(pid);
      for (let i = 0; i < EXECS; i += 1) await execute(connections[i % connections.length]);
      results.get(name).push(+((cpuNs(pid) - before) / 1000 / EXECS).toFixed(1));
    }
  }
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid] : +((sorted[mid - 1] + sorted[mid]) / 2).toFixed(1);
  };
  for (const [name, values] of results)
    console.log(`${name}: Postgres µs/execution median ${median(values)} (${values.join(' ')})`);
} finally {
  for (const { client } of clients.values()) await client.end();
  await schema.drop();
}
