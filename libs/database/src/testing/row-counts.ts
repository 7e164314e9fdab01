import type pg from 'pg';

import { quoteIdent } from '../schema-name.js';

/**
 * Rows per table of one schema, in one statement (so one snapshot): the fuzzers compare it
 * around a rejected request, which must not have stored anything.
 */
export async function countRows(pool: pg.Pool, schema: string): Promise<Record<string, number>> {
  const { rows: tables } = await pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`,
    [schema],
  );
  if (tables.length === 0) return {};
  const counts = tables.map(
    ({ table_name }) =>
      `SELECT '${table_name.replace(/'/g, "''")}' AS t, count(*)::int AS n FROM ${quoteIdent(schema)}.${quoteIdent(table_name)}`,
  );
  const { rows } = await pool.query<{ t: string; n: number }>(counts.join(' UNION ALL '));
  return Object.fromEntries(rows.map(({ t, n }) => [t, n]));
}
