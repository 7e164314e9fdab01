import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { createPool } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';

import { DATABASE_SETTINGS } from '../database-settings.js';
import { type PageQuery, RecordsRepository } from './records.repository.js';

// The plan Postgres runs for the query path's page statement on a shard's pool, with the
// shard's settings (DATABASE_SETTINGS), on tables as small as a new deployment's or a
// benchmark's: its grant lookup probes the three unique indexes, no sequential scan of
// grants, connections or personal servers and no hash join per query.
const USERS = 100;
const TYPE = 'media.playlist';
const ORG = randomUUID();
const APP = randomUUID();

let schema: TestSchema;
let pool: pg.Pool;
const connections: string[] = [];

beforeAll(async () => {
  schema = await createTestSchema({
    prefix: 'ps_page_plan',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  for (let u = 0; u < USERS; u += 1) {
    const [userId, psId, connectionId] = [randomUUID(), randomUUID(), randomUUID()];
    await schema.pool.query('INSERT INTO personal_servers (id, user_id, shard) VALUES ($1, $2, $3)', [
      psId,
      userId,
      u % 2,
    ]);
    await schema.pool.query(
      `INSERT INTO connections (id, personal_server_id, user_id, integration, data_key_id, last_version, synced_at)
       VALUES ($1, $2, $3, 'spotify', $4, 5, now())`,
      [connectionId, psId, userId, randomUUID()],
    );
    await schema.pool.query(
      `INSERT INTO grants (id, connection_id, org_id, application_id, user_id, scopes, types, state, updated_at, seal, consent_nonce)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', now(), $8, $9)`,
      [randomUUID(), connectionId, ORG, APP, userId, ['spotify:read:playlists'], [TYPE], randomBytes(32), randomUUID()],
    );
    await schema.pool.query(
      `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, source_updated_at, version)
       SELECT gen_random_uuid(), $1, $2, $3, 'pl-' || n, '\\x00', now(), n FROM generate_series(1, 5) AS n`,
      [psId, connectionId, TYPE],
    );
    if (u % 2 === 0) connections.push(connectionId);
  }
  await schema.pool.query('ANALYZE');
  // One connection: the statement page() prepared is the one whose plan is read below.
  pool = createPool({
    url: schema.url,
    schema: schema.schema,
    applicationName: 'page-plan-test',
    max: 1,
    settings: DATABASE_SETTINGS,
  });
});
afterAll(async () => {
  await pool.end();
  await schema.drop();
});

/** Every node type of an EXPLAIN (FORMAT JSON) plan, with its relation where it has one. */
function planNodes(node: { 'Node Type': string; 'Relation Name'?: string; Plans?: unknown[] }): string[] {
  const own = node['Relation Name'] ? `${node['Node Type']} on ${node['Relation Name']}` : node['Node Type'];
  return [own, ...(node.Plans ?? []).flatMap((child) => planNodes(child as Parameters<typeof planNodes>[0]))];
}

describe("the page statement's plan on a shard's pool", () => {
  it('looks the grant up by index, on the generic plan the prepared statement settles on', async () => {
    const repository = new RecordsRepository(pool, new TestClock());
    // bench:query's page: one type, 20 records, from the start, no tombstones, no policy limit.
    const page = { shard: 0, orgId: ORG, applicationId: APP, type: TYPE, limit: 20 };
    const fromTheStart = { policyTypes: undefined, since: undefined, afterVersion: 0n, includeDeleted: false };
    const query = (connectionId: string): PageQuery => ({ ...page, ...fromTheStart, connectionId });
    // Postgres tries custom plans for a prepared statement's first five executions, then
    // keeps the generic one when it costs no more.
    for (const connectionId of connections.slice(0, 8)) {
      const read = await repository.page(query(connectionId));
      expect(read.grant?.state).toBe('active');
      expect(read.records).toHaveLength(5);
    }
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ statement: string; generic_plans: string }>(
        `SELECT statement, generic_plans FROM pg_prepared_statements WHERE name LIKE 'ps_page_%'`,
      );
      expect(rows).toHaveLength(1);
      expect(Number(rows[0]!.generic_plans)).toBeGreaterThan(0);
      // The same text prepared again on the same connection, so EXPLAIN can run it.
      await client.query(`PREPARE page_plan AS ${rows[0]!.statement}`);
      await client.query('SET plan_cache_mode = force_generic_plan');
      const explained = await client.query<{ 'QUERY PLAN': [{ Plan: Parameters<typeof planNodes>[0] }] }>(
        `EXPLAIN (FORMAT JSON) EXECUTE page_plan(0, '${connections[0]}', '${APP}', '${ORG}', 20, 0, '${TYPE}')`,
      );
      const nodes = planNodes(explained.rows[0]!['QUERY PLAN'][0].Plan);
      expect(nodes.filter((node) => node.startsWith('Seq Scan') || node === 'Hash Join')).toEqual([]);
      for (const table of ['grants', 'connections', 'personal_servers', 'records'])
        expect(nodes).toContain(`Index Scan on ${table}`);
    } finally {
      await client.query('DEALLOCATE page_plan');
      await client.query('RESET plan_cache_mode');
      client.release();
    }
  });
});
