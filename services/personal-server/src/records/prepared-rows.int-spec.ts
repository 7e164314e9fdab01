import { createRequire } from 'node:module';

import { createPool } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';

import {
  BinaryColumns,
  checkBinaryColumns,
  PreparedRows,
  type RowField,
  type RowReader,
  textArrayLiteral,
} from './prepared-rows.js';

/** Where patched pg-protocol leaves a connection's parser on its socket. */
const PARSER = Symbol.for('context-gateway.pg-protocol.parser');

/** node-pg's own parameter writer (pg/lib/utils has no typings). */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils') as {
  prepareValue: (value: unknown) => unknown;
};

// PreparedRows against real Postgres, on a pool of one connection (so "the same connection"
// and "a fresh one" are certain): what node-pg's Query would have answered, with one Parse per
// connection and no Describe, and a connection that saw an error is not used again.
let schema: TestSchema;
let pool: pg.Pool;
/** Protocol messages the pool's connections received, by name. */
const received = { parseComplete: 0, rowDescription: 0, connections: 0 };

beforeAll(async () => {
  schema = await createTestSchema({ prefix: 'ps_prepared_rows' });
  await schema.pool.query('CREATE TABLE items (id int PRIMARY KEY, label text, body bytea)');
  await schema.pool.query(`INSERT INTO items VALUES (1, 'one', '\\x0001'), (2, NULL, NULL), (3, 'th"r,e{e}', '\\xff')`);
  pool = createPool({ url: schema.url, schema: schema.schema, applicationName: 'prepared-rows-test', max: 1 });
  pool.on('connect', (client) => {
    received.connections += 1;
    const connection = (client as unknown as { connection: pg.Connection }).connection;
    connection.on('parseComplete', () => (received.parseComplete += 1));
    connection.on('rowDescription', () => (received.rowDescription += 1));
  });
});
afterAll(async () => {
  await pool.end();
  await schema.drop();
});

/** Collects rows as they came. */
class Rows implements RowReader<RowField[][]> {
  readonly rows: RowField[][] = [];
  row(fields: readonly RowField[]) {
    this.rows.push([...fields]);
  }
  finish() {
    return this.rows;
  }
}

const ITEMS = 'SELECT id, label, body FROM items WHERE id > $1 ORDER BY id';
const items = (after: string) =>
  PreparedRows.run(pool, { name: 'items_after', text: ITEMS, values: [after], columns: 3, reader: new Rows() });

/** items_after with its bytea column (2) read in binary. */
const itemsBinary = (after: string) =>
  PreparedRows.run(pool, {
    name: 'items_after',
    text: ITEMS,
    values: [after],
    columns: 3,
    binary: new BinaryColumns(3, [2]),
    reader: new Rows(),
  });

describe('PreparedRows', () => {
  it('answers each execution with the rows as text, preparing once per connection and never describing', async () => {
    const before = { ...received };
    expect(await items('0')).toEqual([
      ['1', 'one', '\\x0001'],
      ['2', null, null],
      ['3', 'th"r,e{e}', '\\xff'],
    ]);
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(await items('3')).toEqual([]);
    expect(received.connections - before.connections).toBe(1);
    expect(received.parseComplete - before.parseComplete).toBe(1);
    expect(received.rowDescription - before.rowDescription).toBe(0);
    const { rows } = await pool.query<{ statement: string }>(
      `SELECT statement FROM pg_prepared_statements WHERE name = 'items_after'`,
    );
    expect(rows).toEqual([{ statement: ITEMS }]);
  });

  it('sends text parameters as they are: NULL, and arrays as node-pg writes them', async () => {
    const values = ['plain', 'with "quotes"', 'back\\slash', 'a,b', '{braces}', 'NULL', '', ' spaced ', 'ünï'];
    const answer = await PreparedRows.run(pool, {
      name: 'params',
      text: 'SELECT $1::text IS NULL, array_length($2::text[], 1)::text, u FROM unnest($2::text[]) WITH ORDINALITY AS t(u, n) ORDER BY n',
      values: [null, textArrayLiteral(values)],
      columns: 3,
      reader: new Rows(),
    });
    expect(answer.map((r) => r[2])).toEqual(values);
    // The literal is what node-pg itself would have sent for the array.
    expect(textArrayLiteral(values)).toBe(prepareValue(values));
    expect(answer[0]?.slice(0, 2)).toEqual(['t', String(values.length)]);
  });

  it('fails the statement when the reader throws or a row has another width, and drops that connection', async () => {
    await items('0');
    const connections = received.connections;
    const throwing: RowReader<never> = {
      row() {
        throw new Error('unreadable row');
      },
      finish() {
        throw new Error('never reached');
      },
    };
    await expect(
      PreparedRows.run(pool, { name: 'items_after', text: ITEMS, values: ['0'], columns: 3, reader: throwing }),
    ).rejects.toThrow('unreadable row');
    await expect(
      PreparedRows.run(pool, { name: 'items_after', text: ITEMS, values: ['0'], columns: 4, reader: new Rows() }),
    ).rejects.toThrow('gave a row of 3 columns, not 4');
    // Each failure closed its connection; the statement is prepared again on the next one.
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(received.connections).toBe(connections + 2);
  });

  it('answers a Postgres error with its code, and the next execution works', async () => {
    const divide = (by: string) =>
      PreparedRows.run(pool, {
        name: 'divide',
        text: 'SELECT (10 / $1::int)::text',
        values: [by],
        columns: 1,
        reader: new Rows(),
      });
    await expect(divide('0')).rejects.toMatchObject({ code: '22012' });
    expect(await divide('5')).toEqual([['2']]);
  });

  it('a result type changed under the prepared statement fails that execution only', async () => {
    await schema.pool.query('CREATE TABLE shapes (id int, size int)');
    await schema.pool.query('INSERT INTO shapes VALUES (1, 7)');
    const shapes = () =>
      PreparedRows.run(pool, {
        name: 'shapes',
        text: 'SELECT id, size FROM shapes',
        values: [],
        columns: 2,
        reader: new Rows(),
      });
    expect(await shapes()).toEqual([['1', '7']]);
    await schema.pool.query('ALTER TABLE shapes ALTER size TYPE numeric(4, 1)');
    // Postgres refuses the old statement (node-pg's Query would get the same refusal)…
    await expect(shapes()).rejects.toMatchObject({ code: '0A000' });
    // …and the pool closed its connection: the next one prepares the statement anew.
    expect(await shapes()).toEqual([['1', '7.0']]);
  });

  it('refuses a name already prepared on the connection for another statement', async () => {
    await items('0');
    await expect(
      PreparedRows.run(pool, { name: 'items_after', text: 'SELECT 1', values: [], columns: 1, reader: new Rows() }),
    ).rejects.toThrow('Prepared statements must be unique');
  });

  it('a connection lost mid-statement answers service_unavailable, and the next run gets a fresh connection', async () => {
    await items('0');
    const connections = received.connections;
    // The pool has one connection: this is the backend the next statement runs on.
    const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const sleeping = PreparedRows.run(pool, {
      name: 'sleep',
      text: 'SELECT pg_sleep(5)::text',
      values: [],
      columns: 1,
      reader: new Rows(),
    });
    const failed = sleeping.then(
      () => undefined,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    // What a fast shutdown of Postgres does to every backend.
    await schema.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
    const error = await failed;
    expect(error).toMatchObject({ code: '57P01' });
    // The code path the service takes (AppError.from at its NATS edge): a 503 to retry.
    expect(AppError.from(error).code).toBe('service_unavailable');
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(received.connections).toBe(connections + 1);
  });

  it('a statement_timeout after some rows were read fails the statement, not a partial answer', async () => {
    await items('0');
    const connections = received.connections;
    // On the pool's one connection only; the failure drops it, so the next one has the default.
    await pool.query('SET statement_timeout = 300');
    const reader = new Rows();
    const error = await PreparedRows.run(pool, {
      name: 'slow_tail',
      // Append runs its branches in turn: the first rows are sent before the sleep.
      text: 'SELECT g::text FROM generate_series(1, 3) g UNION ALL SELECT pg_sleep(5)::text',
      values: [],
      columns: 1,
      reader,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: '57014' });
    expect(reader.rows).toEqual([['1'], ['2'], ['3']]);
    // Not a database that cannot be reached: the same `internal` node-pg's Query path gave.
    expect(AppError.from(error).code).toBe('internal');
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(received.connections).toBe(connections + 1);
    const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
    expect(rows[0]?.statement_timeout).not.toBe('300ms');
  });
  it('reads the columns marked binary as their bytes (patched pg-protocol), and only in that execution', async () => {
    const before = { ...received };
    expect(await itemsBinary('0')).toEqual([
      ['1', 'one', Buffer.from([0, 1])],
      ['2', null, null],
      ['3', 'th"r,e{e}', Buffer.from([0xff])],
    ]);
    // The same statement on the same connection, text again: the parser forgot the marks.
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(await itemsBinary('2')).toEqual([['3', 'th"r,e{e}', Buffer.from([0xff])]]);
    expect(received.connections - before.connections).toBe(0);
    // Other queries on that connection read every column as text, node-pg's Query too.
    const { rows } = await pool.query<{ body: Buffer; label: string }>('SELECT body, label FROM items WHERE id = 1');
    expect(rows).toEqual([{ body: Buffer.from([0, 1]), label: 'one' }]);
  });

  it('binds text parameters itself when it reads binary columns: NULL, non-ASCII, arrays', async () => {
    const values = ['plain', 'with "quotes"', 'back\\slash', 'ünï 日本', '', 'NULL'];
    const answer = await PreparedRows.run(pool, {
      name: 'params_binary',
      text: 'SELECT $1::text IS NULL, $3::bytea, u FROM unnest($2::text[]) WITH ORDINALITY AS t(u, n) ORDER BY n',
      values: [null, textArrayLiteral(values), '\\x00ff10'],
      columns: 3,
      binary: new BinaryColumns(3, [0, 1]),
      reader: new Rows(),
    });
    // A boolean's binary form is one byte.
    expect(answer).toEqual(values.map((u) => [Buffer.from([1]), Buffer.from([0, 0xff, 0x10]), u]));
  });

  it('a binary execution that fails answers its error, and its connection is not used again', async () => {
    await items('0');
    const connections = received.connections;
    const failing = PreparedRows.run(pool, {
      name: 'items_fail',
      text: 'SELECT id, label, body FROM items WHERE 1 / (id - 2) > 0 ORDER BY id',
      values: [],
      columns: 3,
      binary: new BinaryColumns(3, [2]),
      reader: new Rows(),
    });
    await expect(failing).rejects.toMatchObject({ code: '22012' });
    // The pool destroyed the errored connection: the next statement runs, as text, on a new one.
    // (The parser clearing its marks at the error's ReadyForQuery is pinned in prepared-rows.spec.ts.)
    expect(await items('2')).toEqual([['3', 'th"r,e{e}', '\\xff']]);
    expect(received.connections).toBe(connections + 1);
  });

  it('checkBinaryColumns passes on a pool whose parser is patched, and refuses one whose parser is not', async () => {
    await expect(checkBinaryColumns(pool)).resolves.toBeUndefined();
    // The pool's one connection, its parser taken off its socket: what an unpatched pg-protocol leaves.
    const client = await pool.connect();
    const stream = (client as unknown as { connection: pg.Connection }).connection.stream as unknown as Record<
      symbol,
      unknown
    >;
    const parser = stream[PARSER];
    delete stream[PARSER];
    client.release();
    try {
      await expect(checkBinaryColumns(pool)).rejects.toThrow('pg-protocol is not patched');
    } finally {
      stream[PARSER] = parser;
    }
  });
});
