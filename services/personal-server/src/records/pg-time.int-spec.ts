import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { isoFromTimestamptz, timestamptzParameter } from './pg-time.js';

// Postgres's own text of timestamptz(3) values against what the page statement formatted
// with to_char before (records.repository.ts): the same string for every value.
let schema: TestSchema;

beforeAll(async () => {
  schema = await createTestSchema({ prefix: 'ps_pg_time' });
});
afterAll(async () => {
  await schema.drop();
});

/** Whole seconds, 1 to 3 fraction digits, negative epochs, leap day, the column's rounding to ms; then 500 seeded random times. */
const VALUES_SQL = `
  SELECT (timestamptz 'epoch' + ms * interval '1 millisecond')::timestamptz(3) AS at
    FROM unnest(ARRAY[0, 1, 10, 100, 120, 123, 999, 1000, -1, -999, -1000, -2208988799999, 1772600767123,
                      1709164800000, 253402300799999, -62135596800000]::bigint[]) AS ms
  UNION ALL
  SELECT timestamptz '2026-12-06 16:13:00.1235+00'::timestamptz(3)
  UNION ALL
  SELECT timestamptz 'epoch' + (random() * 4e12 - 2e12) * interval '1 millisecond' FROM generate_series(1, 500)`;

async function compare(timeZone: string): Promise<void> {
  const client = await schema.pool.connect();
  try {
    await client.query(`SET TimeZone = '${timeZone}'`);
    // The same 500 random times every run (and in every zone): a failure can be reproduced.
    await client.query('SELECT setseed(0.42)');
    const { rows } = await client.query<{ text: string; expected: string }>({
      text: `SELECT at::text AS text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS expected
               FROM (${VALUES_SQL}) v(at)`,
    });
    expect(rows.length).toBeGreaterThan(500);
    expect(rows.map((r) => isoFromTimestamptz(r.text))).toEqual(rows.map((r) => r.expected));
  } finally {
    await client.query('RESET TimeZone');
    client.release();
  }
}

describe('isoFromTimestamptz against Postgres', () => {
  it('formats what a UTC session writes exactly as to_char did', async () => {
    await compare('UTC');
  });

  it('formats what a session in another time zone writes exactly as to_char did', async () => {
    await compare('America/St_Johns');
    await compare('Asia/Kolkata');
  });
});

describe('timestamptzParameter', () => {
  it('is read by Postgres as the same instant, years past 9999 and BC included', async () => {
    const dates = [
      new Date('2026-12-06T16:13:00.123Z'),
      new Date('+010000-01-01T00:00:00.000Z'),
      new Date('+275760-09-13T00:00:00.000Z'),
      new Date('0000-06-01T12:00:00.001Z'),
    ];
    const { rows } = await schema.pool.query<{ ms: string }>(
      `SELECT (extract(epoch FROM t::timestamptz) * 1000)::bigint::text AS ms FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i`,
      [dates.map(timestamptzParameter)],
    );
    expect(rows.map((r) => Number(r.ms))).toEqual(dates.map((d) => d.getTime()));
  });
});
