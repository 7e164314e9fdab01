import { createRequire } from 'node:module';

import { describe, expect, it } from '@jest/globals';
import type { Pool, Submittable } from 'pg';

import { BinaryColumns, bindMessage, PreparedRows } from './prepared-rows.js';

/** The pg-protocol node-pg loads (personal-server does not depend on it directly). */
const pgProtocolParser = createRequire(createRequire(import.meta.url).resolve('pg'))('pg-protocol/dist/parser.js') as {
  PARSER?: symbol;
  Parser: new () => {
    binaryColumns?: readonly boolean[];
    parse(buffer: Buffer, callback: (message: { name: string; fields?: unknown[] }) => void): void;
  };
};

/** A backend message: its code, Int32 length, body. */
function backendMessage(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** A DataRow of these values' bytes. */
function dataRow(values: Buffer[]): Buffer {
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length, 0);
  const parts: Buffer[] = [count];
  for (const value of values) {
    const length = Buffer.alloc(4);
    length.writeInt32BE(value.length, 0);
    parts.push(length, value);
  }
  return backendMessage('D', Buffer.concat(parts));
}

/** A pool whose one connection is `connection`: it submits the query there and answers its refusal. */
function poolOn(connection: object): Pool {
  return {
    query: (query: Submittable) => {
      const refused = (query as unknown as { submit(c: object): Error | null }).submit(connection);
      return refused ? Promise.reject(refused) : Promise.resolve(undefined);
    },
  } as unknown as Pool;
}

const statement = {
  name: 'one',
  text: 'SELECT 1',
  values: [],
  columns: 1,
  reader: { row: () => undefined, finish: () => undefined },
};

describe('pg-protocol, patched (patches/pg-protocol@1.16.1.patch)', () => {
  it('keeps the raw bytes of the DataRow columns a query marks, until the next ReadyForQuery', () => {
    const { Parser, PARSER } = pgProtocolParser;
    expect(PARSER).toBe(Symbol.for('context-gateway.pg-protocol.parser'));
    const parser = new Parser();
    expect(parser).toHaveProperty('binaryColumns', undefined);
    const invalidUtf8 = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    const row = dataRow([Buffer.from('text'), invalidUtf8]);
    const messages: { name: string; fields?: unknown[] }[] = [];
    parser.binaryColumns = [false, true];
    parser.parse(Buffer.concat([row, row, backendMessage('Z', Buffer.from('I')), row]), (m) => messages.push(m));
    expect(messages.map((m) => m.fields ?? m.name)).toEqual([
      ['text', invalidUtf8],
      ['text', invalidUtf8],
      'readyForQuery',
      ['text', invalidUtf8.toString('utf-8')],
    ]);
    expect(parser.binaryColumns).toBeUndefined();
  });

  it('forgets the marks at the ReadyForQuery after an ErrorResponse (an execution that failed)', () => {
    const parser = new pgProtocolParser.Parser();
    const bytes = Buffer.from([0xff, 0x00]);
    const error = backendMessage('E', Buffer.from('SERROR\0C22012\0Mdivision by zero\0\0', 'latin1'));
    const messages: { name: string; fields?: unknown[] }[] = [];
    parser.binaryColumns = [true];
    parser.parse(Buffer.concat([dataRow([bytes]), error]), (m) => messages.push(m));
    expect(parser.binaryColumns).toEqual([true]);
    parser.parse(Buffer.concat([backendMessage('Z', Buffer.from('I')), dataRow([bytes])]), (m) => messages.push(m));
    expect(messages.map((m) => m.fields ?? m.name)).toEqual([
      [bytes],
      'error',
      'readyForQuery',
      [bytes.toString('utf-8')],
    ]);
    expect(parser.binaryColumns).toBeUndefined();
  });

  it('reads a marked DataRow that comes split across two parse() calls', () => {
    const parser = new pgProtocolParser.Parser();
    const bytes = Buffer.from(Array.from({ length: 40 }, (_, i) => 0xff - i));
    const row = dataRow([Buffer.from('text'), bytes]);
    const messages: { name: string; fields?: unknown[] }[] = [];
    parser.binaryColumns = [false, true];
    // Cut inside the binary value.
    const cut = row.length - 15;
    parser.parse(row.subarray(0, cut), (m) => messages.push(m));
    expect(messages).toEqual([]);
    parser.parse(row.subarray(cut), (m) => messages.push(m));
    expect(messages.map((m) => m.fields)).toEqual([['text', bytes]]);
  });

  it('keeps a copy of a marked value, not a view of the buffer it reuses for the next messages', () => {
    const parser = new pgProtocolParser.Parser();
    const bytes = Buffer.alloc(64, 0xaa);
    const next = dataRow([Buffer.alloc(8, 0x55)]);
    // One chunk: a whole row and the head of the next, then the next's tail. The parser keeps
    // the first chunk as its buffer and moves the head to its start when the tail comes,
    // over the first row's bytes.
    const first = Buffer.concat([dataRow([bytes]), next.subarray(0, 6)]);
    const before = Buffer.from(first);
    const messages: { name: string; fields?: unknown[] }[] = [];
    parser.binaryColumns = [true];
    parser.parse(first, (m) => messages.push(m));
    parser.parse(next.subarray(6), (m) => messages.push(m));
    expect(first).not.toEqual(before);
    expect(messages.map((m) => m.fields)).toEqual([[bytes], [Buffer.alloc(8, 0x55)]]);
  });
});

describe('bindMessage', () => {
  it('writes a Bind: portal, statement, text parameters (NULL as -1), the result formats', () => {
    const formats = new BinaryColumns(3, [1]).formats;
    expect(formats).toEqual(Buffer.from([0, 3, 0, 0, 0, 1, 0, 0]));
    const expected = Buffer.concat([
      Buffer.from('B'),
      Buffer.from([0, 0, 0, 4 + 1 + 3 + 2 + 2 + 4 + 4 + 3 + formats.length]),
      Buffer.from('\0st\0', 'latin1'),
      Buffer.from([0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3]),
      Buffer.from('ü!'),
      formats,
    ]);
    expect(bindMessage('st', [null, 'ü!'], formats)).toEqual(expected);
  });
});

describe('PreparedRows', () => {
  it('refuses to run, naming why, on a node-pg whose connection lacks the statement maps it reads', async () => {
    await expect(PreparedRows.run(poolOn({ submittedNamedStatements: {} }), statement)).rejects.toThrow(
      'node-pg internals changed: PreparedRows needs parsedStatements/submittedNamedStatements',
    );
    await expect(PreparedRows.run(poolOn({ parsedStatements: {} }), statement)).rejects.toThrow(
      'node-pg internals changed',
    );
  });

  it('refuses binary columns on a connection whose pg-protocol parser is not patched', async () => {
    const connection = { parsedStatements: {}, submittedNamedStatements: {}, stream: {} };
    await expect(
      PreparedRows.run(poolOn(connection), { ...statement, binary: new BinaryColumns(1, [0]) }),
    ).rejects.toThrow('pg-protocol is not patched');
  });

  it('refuses formats for another number of columns than the statement has, as a rejected promise', async () => {
    const run = PreparedRows.run(poolOn({ parsedStatements: {}, submittedNamedStatements: {} }), {
      ...statement,
      binary: new BinaryColumns(2, [1]),
    });
    await expect(run).rejects.toThrow("one reads 2 columns' formats for 1 columns");
    expect(() => new BinaryColumns(3, [3])).toThrow('no column 3 of 3');
  });

  it('gives an error made on a socket event a stack that leads back to its caller', async () => {
    const fromSocket = (): Error => new Error('made where no caller is on the stack');
    const socket = {
      query: () => new Promise((_, reject) => setImmediate(() => reject(fromSocket()))),
    } as unknown as Pool;
    const error = (await PreparedRows.run(socket, statement).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe('made where no caller is on the stack');
    // The awaiting caller (this spec), not the event that made it.
    expect(error.stack).not.toContain('fromSocket');
    expect(error.stack).toContain('prepared-rows.spec');
  });
});
