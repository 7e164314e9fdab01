import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type pg from 'pg';

import {
  type CopyColumn,
  copyRowsBinary,
  copyRowsBinaryCommitted,
  copyRowsBinaryInTransaction,
  encodeCopyBinary,
} from './copy-binary.js';
import { createTestSchema, type TestSchema } from './testing/test-schema.js';

let testSchema: TestSchema;

const columns: CopyColumn[] = [
  { name: 'id', type: 'int8' },
  { name: 'ref', type: 'uuid' },
  { name: 'at', type: 'timestamptz' },
  { name: 'label', type: 'text' },
  { name: 'body', type: 'bytea' },
  { name: 'n', type: 'int4' },
  { name: 'flag', type: 'bool' },
];

beforeAll(async () => {
  testSchema = await createTestSchema({ prefix: 't_copy' });
  await testSchema.pool.query(`CREATE TABLE "noted" (id BIGINT PRIMARY KEY)`);
  await testSchema.pool.query(
    `CREATE TABLE "copied" (id BIGINT PRIMARY KEY, ref UUID UNIQUE, at TIMESTAMPTZ(3), label TEXT, body BYTEA, n INTEGER, flag BOOLEAN)`,
  );
});

afterAll(async () => {
  await testSchema.drop();
});

describe('copyRowsBinary', () => {
  it('round-trips every column type, NULLs, multi-byte text and byte views through Postgres', async () => {
    const backing = Buffer.from([0xff, 0, 1, 2, 0xfe]);
    const rows = [
      [
        1,
        '0b7e8a5c-3f1d-4c2a-9e6b-1a2b3c4d5e6f',
        new Date('2026-11-25T10:00:00.123Z'),
        'zürich 😀 "q" \\ \t\n',
        backing.subarray(1, 4),
        -7,
        true,
      ],
      [
        9_007_199_254_740_991n,
        'FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF',
        new Date('1969-07-20T20:17:40.001Z'),
        '',
        Buffer.alloc(0),
        2_147_483_647,
        false,
      ],
      [3, null, null, null, null, undefined, null],
      // Past 32 bits both ways, as plain numbers; a time near the end and one past the exact-double range.
      [
        -5_000_000_000,
        '00000000-0000-4000-8000-00000000000a',
        new Date('3000-01-01T00:00:00.001Z'),
        'far',
        null,
        null,
        null,
      ],
      [5_000_000_001, null, new Date('2200-06-01T12:34:56.789Z'), 'near', null, null, null],
    ];
    const client = await testSchema.pool.connect();
    try {
      expect(await copyRowsBinary(client, 'copied', columns, rows)).toBe(5);
    } finally {
      client.release();
    }
    const { rows: back } = await testSchema.pool.query(
      `SELECT id::text, ref, at, label, body, n, flag FROM copied ORDER BY id`,
    );
    expect(back).toEqual([
      {
        id: '-5000000000',
        ref: '00000000-0000-4000-8000-00000000000a',
        at: new Date('3000-01-01T00:00:00.001Z'),
        label: 'far',
        body: null,
        n: null,
        flag: null,
      },
      {
        id: '1',
        ref: '0b7e8a5c-3f1d-4c2a-9e6b-1a2b3c4d5e6f',
        at: new Date('2026-11-25T10:00:00.123Z'),
        label: 'zürich 😀 "q" \\ \t\n',
        body: Buffer.from([0, 1, 2]),
        n: -7,
        flag: true,
      },
      { id: '3', ref: null, at: null, label: null, body: null, n: null, flag: null },
      {
        id: '5000000001',
        ref: null,
        at: new Date('2200-06-01T12:34:56.789Z'),
        label: 'near',
        body: null,
        n: null,
        flag: null,
      },
      {
        id: '9007199254740991',
        ref: 'ffffffff-ffff-4fff-bfff-ffffffffffff',
        at: new Date('1969-07-20T20:17:40.001Z'),
        label: '',
        body: Buffer.alloc(0),
        n: 2_147_483_647,
        flag: false,
      },
    ]);
  });

  it('copies nothing when one row breaks a constraint, and leaves the connection usable', async () => {
    const client = await testSchema.pool.connect();
    try {
      await expect(
        copyRowsBinary(client, 'copied', columns, [
          [100, null, null, 'fresh', null, null, null],
          [1, null, null, 'duplicate primary key', null, null, null],
        ]),
      ).rejects.toMatchObject({ code: '23505' });
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM copied WHERE id = 100`);
      expect(rows[0].n).toBe(0);
    } finally {
      client.release();
    }
  });

  it('takes part in the caller’s transaction', async () => {
    const client = await testSchema.pool.connect();
    try {
      await client.query('BEGIN');
      await copyRowsBinary(client, 'copied', columns, [[200, null, null, 'rolled back', null, null, null]]);
      await client.query('ROLLBACK');
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM copied WHERE id = 200`);
      expect(rows[0].n).toBe(0);
    } finally {
      client.release();
    }
  });
});

describe('copyRowsBinaryCommitted', () => {
  const row = (id: number) => [id, null, null, `row ${id}`, null, null, null];
  const count = async (table: string, id: number) => {
    const { rows } = await testSchema.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE id = $1`, [id]);
    return rows[0].n as number;
  };
  const withClient = async (fn: (client: pg.PoolClient) => Promise<void>) => {
    const client = await testSchema.pool.connect();
    try {
      await fn(client);
    } finally {
      client.release();
    }
  };

  it('copies the rows and runs the statements after them, both committed, one query', () =>
    withClient(async (client) => {
      const copied = await copyRowsBinaryCommitted(
        client,
        'copied',
        columns,
        [row(1000), row(1001)],
        'INSERT INTO noted VALUES (1000)',
      );
      expect(copied).toBe(2);
      // Committed: another connection sees both.
      expect((await count('copied', 1000)) + (await count('copied', 1001))).toBe(2);
      expect(await count('noted', 1000)).toBe(1);
      // Nothing left open on the connection.
      const { rows } = await client.query(`SELECT now() = statement_timestamp() AS idle`);
      expect(rows[0].idle).toBe(true);
    }));

  it('refuses inside an open transaction, where nothing would be committed', () =>
    withClient(async (client) => {
      await client.query('BEGIN');
      await expect(
        copyRowsBinaryCommitted(client, 'copied', columns, [row(1400)], 'INSERT INTO noted VALUES (1400)'),
      ).rejects.toMatchObject({ name: 'AppError', code: 'internal' });
      await client.query('ROLLBACK');
      expect(await count('copied', 1400)).toBe(0);
      expect(await count('noted', 1400)).toBe(0);
    }));

  // [table copied into, its rows, the statement after, the error, ids that must not be stored]
  const failures: [string, string, number[], string, string, [string, number][]][] = [
    [
      'a statement after the rows fails',
      'copied',
      [1100],
      'INSERT INTO noted VALUES (1000)',
      '23505',
      [['copied', 1100]],
    ],
    [
      'the rows break a constraint',
      'copied',
      [1200, 1000],
      'INSERT INTO noted VALUES (1200)',
      '23505',
      [
        ['copied', 1200],
        ['noted', 1200],
      ],
    ],
    // The data went out ahead of a COPY that never started: Postgres drops it.
    ['the COPY itself fails', 'no_such_table', [1300], 'INSERT INTO noted VALUES (1300)', '42P01', [['noted', 1300]]],
  ];
  it.each(failures)('keeps nothing when %s, and the connection goes on', (_, table, ids, then, code, absent) =>
    withClient(async (client) => {
      await expect(copyRowsBinaryCommitted(client, table, columns, ids.map(row), then)).rejects.toMatchObject({ code });
      for (const [where, id] of absent) expect(await count(where, id)).toBe(0);
      const next = (ids[0] ?? 0) + 1;
      expect(await copyRowsBinaryCommitted(client, 'copied', columns, [row(next)], '')).toBe(1);
      expect(await count('copied', next)).toBe(1);
    }),
  );
});

describe('copyRowsBinaryInTransaction', () => {
  const row = (id: number) => [id, null, null, `row ${id}`, null, null, null];
  const count = async (client: pg.ClientBase, id: number) => {
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM copied WHERE id = $1`, [id]);
    return rows[0].n as number;
  };
  /**
   * Whether savepoint `name` is set, by rolling back to it. When it is not, the failed
   * rollback is undone under a savepoint of its own and the transaction is left as it was;
   * when it is, the rollback undoes everything since `name` (`probe` included): ask last.
   */
  const hasSavepoint = async (client: pg.ClientBase, name: string) => {
    await client.query('SAVEPOINT probe');
    try {
      await client.query(`ROLLBACK TO SAVEPOINT ${name}`);
      return true;
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT probe');
      return false;
    } finally {
      await client.query('RELEASE SAVEPOINT probe').catch(() => undefined);
    }
  };
  const inTransaction = async (fn: (client: pg.PoolClient) => Promise<void>) => {
    const client = await testSchema.pool.connect();
    try {
      await client.query('BEGIN');
      await fn(client);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  };

  it('sets the savepoint, copies the rows and releases it in one query, inside the caller’s transaction', () =>
    inTransaction(async (client) => {
      const queries = jest.spyOn(client, 'query');
      const copied = await copyRowsBinaryInTransaction(client, 'copied', columns, [row(2000), row(2001)], 'copy_new');
      expect(queries).toHaveBeenCalledTimes(1);
      queries.mockRestore();
      expect(copied).toBe(2);
      // Released: the transaction's own rows, not a subtransaction's.
      expect(await hasSavepoint(client, 'copy_new')).toBe(false);
      expect((await count(client, 2000)) + (await count(client, 2001))).toBe(2);
      // Not committed: another connection sees nothing yet.
      expect(await count(testSchema.pool as unknown as pg.ClientBase, 2000)).toBe(0);
    }));

  it('leaves the transaction failed when the rows break a constraint, the savepoint set and not released', () =>
    inTransaction(async (client) => {
      await client.query('INSERT INTO copied (id) VALUES (2100)');
      await expect(
        copyRowsBinaryInTransaction(client, 'copied', columns, [row(2101), row(2100)], 'copy_new'),
      ).rejects.toMatchObject({ code: '23505' });
      // Failed: a statement now is refused. (Asked by a query, not getTransactionStatus(): the
      // call rejects on Postgres's ErrorResponse, and the ReadyForQuery that sets the status may
      // come in a later read; pg runs the next query only after it.)
      await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      // The savepoint was set and not released: rolling back to it keeps what came before.
      await client.query('ROLLBACK TO SAVEPOINT copy_new');
      expect(await count(client, 2100)).toBe(1);
      expect(await count(client, 2101)).toBe(0);
      // The connection goes on, in the same transaction.
      expect(await copyRowsBinaryInTransaction(client, 'copied', columns, [row(2102)], 'copy_new')).toBe(1);
      expect(await count(client, 2102)).toBe(1);
    }));

  it('refuses outside a transaction before copying: nothing is stored, and the connection goes on', async () => {
    const client = await testSchema.pool.connect();
    try {
      // Postgres refuses the SAVEPOINT (no transaction block) and runs nothing after it.
      await expect(
        copyRowsBinaryInTransaction(client, 'copied', columns, [row(2200)], 'copy_new'),
      ).rejects.toMatchObject({ code: '25P01' });
      expect(await count(client, 2200)).toBe(0);
      expect(client.getTransactionStatus()).toBe('I');
    } finally {
      client.release();
    }
  });

  it('takes only a plain savepoint name, refused before anything is sent', () =>
    inTransaction(async (client) => {
      const queries = jest.spyOn(client, 'query');
      for (const name of ['', 'Copy', '1st', 'x; COMMIT', 'copy new', 'x'.repeat(64)]) {
        expect(() => copyRowsBinaryInTransaction(client, 'copied', columns, [row(2300)], name)).toThrow(
          'not a savepoint name',
        );
      }
      expect(queries).not.toHaveBeenCalled();
      queries.mockRestore();
      expect(await copyRowsBinaryInTransaction(client, 'copied', columns, [row(2300)], 'x'.repeat(63))).toBe(1);
    }));
});

describe('encodeCopyBinary', () => {
  it('refuses a value its column cannot take, naming the column, before anything is sent', () => {
    expect(() => encodeCopyBinary(['uuid'], [['not-a-uuid']])).toThrow('COPY column 0 (uuid) cannot take string');
    // Right length and digits, a dash one place off; a non-hex digit; a non-ASCII one.
    expect(() => encodeCopyBinary(['uuid'], [['0b7e8a5c3-f1d-4c2a-9e6b-1a2b3c4d5e6f']])).toThrow('(uuid) cannot take');
    expect(() => encodeCopyBinary(['uuid'], [['0b7e8a5c-3f1d-4c2a-9e6b-1a2b3c4d5e6g']])).toThrow('(uuid) cannot take');
    expect(() => encodeCopyBinary(['uuid'], [['0b7e8a5c-3f1d-4c2a-9e6b-1a2b3c4d5e6é']])).toThrow('(uuid) cannot take');
    expect(() => encodeCopyBinary(['text', 'int8'], [['x', 1.5]])).toThrow('COPY column 1 (int8) cannot take number');
    expect(() => encodeCopyBinary(['timestamptz'], [[new Date(Number.NaN)]])).toThrow('an invalid Date');
    expect(() => encodeCopyBinary(['bytea'], [['text is not bytes']])).toThrow('(bytea) cannot take string');
    expect(() => encodeCopyBinary(['int4', 'int4'], [[1]])).toThrow('1 values for 2 columns');
  });

  it('writes the documented header and trailer', () => {
    const empty = encodeCopyBinary(['int4'], []);
    expect(empty.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(empty.length).toBe(11 + 8 + 2);
    expect(empty.readInt16BE(19)).toBe(-1);
  });
});
