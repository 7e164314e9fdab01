import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { AppError } from '@context-gateway/errors';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * Bulk appends with `COPY … FROM STDIN (FORMAT binary)`: for thousands of rows per
 * statement Postgres parses binary COPY at about half the CPU of an `INSERT … SELECT
 * unnest($1::…[])` (no array literals to parse, no hex-escaped bytea), and the rows are
 * encoded here straight into one buffer.
 *
 * Our own encoder rather than pg-copy-streams-binary: that one builds a stream object and
 * several buffers per field, which costs more than the insert it feeds; the format itself
 * (PostgreSQL docs, "COPY — Binary Format") is a header, then per row a field count and
 * length-prefixed fields, then a -1 trailer.
 *
 * Production writes take the one-round-trip paths, which write the query, the COPY data
 * and its end together on pg's connection: copyRowsBinaryCommitted (the audit log) and
 * copyRowsBinaryInTransaction (personal-server's new records). copyRowsBinary, on
 * pg-copy-streams, is left for its spec and as the "before" of
 * services/audit/bench/commit.bench.mjs.
 */
export type CopyColumnType = 'bool' | 'int4' | 'int8' | 'uuid' | 'timestamptz' | 'text' | 'bytea';

/** Several columns whose fields come already encoded by CopyFieldsEncoder, as one Uint8Array per row. */
export interface EncodedColumns {
  fields: number;
}
export type CopyColumnSpec = CopyColumnType | EncodedColumns;

export type CopyColumn =
  | { name: string; type: CopyColumnType }
  /** `names.length` columns, each row's value a Uint8Array of their fields from CopyFieldsEncoder. */
  | { names: readonly string[]; type: 'encoded' };

/** A row's values in column order; null (or undefined) is SQL NULL. */
export type CopyRow = readonly unknown[];

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_SIZE = SIGNATURE.length + 4 + 4; // signature, flags, header extension length
/** Microseconds between the Unix epoch and Postgres's (2000-01-01). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;
const PG_EPOCH_OFFSET_US_NUMBER = Number(PG_EPOCH_OFFSET_US);
/** Below this many ms from the epoch, ms × 1000 − PG_EPOCH_OFFSET_US is a safe integer (about ±142 years). */
const MAX_EXACT_MS = (Number.MAX_SAFE_INTEGER - PG_EPOCH_OFFSET_US_NUMBER) / 1000;
const TWO_32 = 2 ** 32;

/**
 * A safe integer as a big-endian int64, without a BigInt (an allocation per value on the
 * audit writer's hot path): the high word is floor(n / 2^32) — negative numbers included,
 * two's complement — and the low word the rest.
 */
function writeSafeInt64(out: Buffer, n: number, at: number): number {
  const high = Math.floor(n / TWO_32);
  out.writeInt32BE(high, at);
  out.writeUInt32BE(n - high * TWO_32, at + 4);
  return at + 8;
}

/** A hex digit's value, or -1 (by char code, '0'–'9', 'a'–'f', 'A'–'F'). */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d += 1) {
  HEX_VALUE[d.toString(16).charCodeAt(0)] = d;
  HEX_VALUE[d.toString(16).toUpperCase().charCodeAt(0)] = d;
}
/** Where a UUID's text form (8-4-4-4-12) has its dashes. */
const isUuidDash = (i: number) => i === 8 || i === 13 || i === 18 || i === 23;

/** The 16 bytes of a UUID's text form at `at`; false (nothing meaningful written) if it is not one. */
function writeUuid(out: Buffer, text: string, at: number): boolean {
  if (text.length !== 36) return false;
  let byte = at;
  for (let i = 0; i < 36; i += 2) {
    if (isUuidDash(i)) {
      if (text.charCodeAt(i) !== 0x2d) return false;
      i += 1;
    }
    const high = HEX_VALUE[text.charCodeAt(i)] ?? -1;
    const low = HEX_VALUE[text.charCodeAt(i + 1)] ?? -1;
    if (high < 0 || low < 0) return false;
    out[byte++] = (high << 4) | low;
  }
  return true;
}
const FIXED_SIZE: Partial<Record<CopyColumnType, number>> = { bool: 1, int4: 4, int8: 8, uuid: 16, timestamptz: 8 };

function wrongValue(column: number, type: CopyColumnType, value: unknown): never {
  throw new TypeError(
    `COPY column ${column} (${type}) cannot take ${value instanceof Date ? 'an invalid Date' : typeof value}`,
  );
}

/** The type of column `c`, which the loops only ask for below `types.length`. */
function columnType(types: readonly CopyColumnSpec[], c: number): CopyColumnSpec {
  const type = types[c];
  if (type === undefined) throw new RangeError(`COPY has no column ${c}`);
  return type;
}

function fieldSize(type: CopyColumnType, value: unknown, column: number): number {
  const fixed = FIXED_SIZE[type];
  if (fixed !== undefined) return fixed;
  if (type === 'text')
    return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : wrongValue(column, type, value);
  return value instanceof Uint8Array ? value.length : wrongValue(column, type, value);
}

/** Bytes `row` takes after its field count: each field's length word and value (an encoded group as it is). */
function rowSize(types: readonly CopyColumnSpec[], row: CopyRow): number {
  if (row.length !== types.length) throw new TypeError(`COPY row has ${row.length} values for ${types.length} columns`);
  let size = 0;
  for (let c = 0; c < types.length; c += 1) {
    const type = columnType(types, c);
    const value = row[c];
    if (typeof type === 'object') {
      if (!(value instanceof Uint8Array)) throw new TypeError(`COPY column ${c} (encoded) cannot take ${typeof value}`);
      size += value.length;
    } else size += 4 + (value == null ? 0 : fieldSize(type, value, c));
  }
  return size;
}

/** `row`'s fields (not its field count) into `out` at `at`; returns where they end. */
function writeFields(out: Buffer, types: readonly CopyColumnSpec[], row: CopyRow, at: number): number {
  for (let c = 0; c < types.length; c += 1) {
    const value = row[c];
    const type = columnType(types, c);
    if (typeof type === 'object') {
      const bytes = value as Uint8Array;
      out.set(bytes, at);
      at += bytes.length;
      continue;
    }
    if (value == null) {
      at = out.writeInt32BE(-1, at);
      continue;
    }
    switch (type) {
      case 'bool':
        if (typeof value !== 'boolean') wrongValue(c, type, value);
        at = out.writeInt32BE(1, at);
        at = out.writeUInt8(value ? 1 : 0, at);
        break;
      case 'int4':
        if (typeof value !== 'number' || !Number.isInteger(value)) wrongValue(c, type, value);
        at = out.writeInt32BE(4, at);
        at = out.writeInt32BE(value, at);
        break;
      case 'int8':
        at = out.writeInt32BE(8, at);
        if (typeof value === 'bigint') at = out.writeBigInt64BE(value, at);
        else if (typeof value === 'number' && Number.isSafeInteger(value)) at = writeSafeInt64(out, value, at);
        else wrongValue(c, type, value);
        break;
      case 'uuid':
        if (typeof value !== 'string' || !writeUuid(out, value, at + 4)) wrongValue(c, type, value);
        at = out.writeInt32BE(16, at) + 16;
        break;
      case 'timestamptz': {
        const ms = value instanceof Date ? value.getTime() : Number.NaN;
        if (Number.isNaN(ms)) wrongValue(c, type, value);
        at = out.writeInt32BE(8, at);
        // A Date's milliseconds (|ms| ≤ 8.64e15) in microseconds stay below 2^63 but not 2^53: exact as a bigint.
        at =
          Math.abs(ms) < MAX_EXACT_MS
            ? writeSafeInt64(out, ms * 1000 - PG_EPOCH_OFFSET_US_NUMBER, at)
            : out.writeBigInt64BE(BigInt(ms) * 1000n - PG_EPOCH_OFFSET_US, at);
        break;
      }
      case 'text': {
        const written = out.write(value as string, at + 4, 'utf8');
        at = out.writeInt32BE(written, at);
        at += written;
        break;
      }
      case 'bytea': {
        const bytes = value as Uint8Array;
        at = out.writeInt32BE(bytes.length, at);
        out.set(bytes, at);
        at += bytes.length;
        break;
      }
    }
  }
  return at;
}

/** The whole COPY payload for `rows`, in the binary format. Throws TypeError on a value its column cannot take. */
export function encodeCopyBinary(types: readonly CopyColumnSpec[], rows: readonly CopyRow[]): Buffer {
  const fieldCount = types.reduce((n: number, type) => n + (typeof type === 'object' ? type.fields : 1), 0);
  let size = HEADER_SIZE + 2;
  for (const row of rows) size += 2 + rowSize(types, row);
  const out = Buffer.allocUnsafe(size);
  let at = SIGNATURE.copy(out, 0);
  at = out.writeInt32BE(0, at);
  at = out.writeInt32BE(0, at);
  for (const row of rows) at = writeFields(out, types, row, out.writeInt16BE(fieldCount, at));
  at = out.writeInt16BE(-1, at);
  if (at !== size) throw new Error(`COPY encoder wrote ${at} of ${size} bytes`);
  return out;
}

/**
 * Some columns of many rows encoded ahead of the COPY (on a worker thread, say), a row at a
 * time as the rows are made, so no row's values outlive its add(): each row's fields one
 * after the other, in a buffer of its own (transferable) that grows as needed; row i is
 * bytes[ends[i-1] ?? 0, ends[i]). Such a row's part goes into encodeCopyBinary (or any of
 * the copyRowsBinary… functions) as the value of one `{ fields: types.length }` column,
 * copied as it is.
 */
export class CopyFieldsEncoder {
  private out: Buffer;
  private at = 0;
  private readonly ends: number[] = [];

  /** `expectedBytes`: a first guess of the total, so most batches never grow the buffer. */
  constructor(
    private readonly types: readonly CopyColumnType[],
    expectedBytes = 4_096,
  ) {
    this.out = plainBuffer(Math.max(expectedBytes, 64));
  }

  /** Throws TypeError on a value its column cannot take (nothing of the row written). */
  add(row: CopyRow): void {
    const size = rowSize(this.types, row);
    if (this.at + size > this.out.length) {
      const grown = plainBuffer(Math.max(this.out.length * 2, this.at + size));
      this.out.copy(grown, 0, 0, this.at);
      this.out = grown;
    }
    const end = writeFields(this.out, this.types, row, this.at);
    if (end !== this.at + size) throw new Error(`COPY encoder wrote ${end - this.at} of ${size} bytes`);
    this.at = end;
    this.ends.push(end);
  }

  /** The rows so far; a view of the encoder's buffer, which moves with it when transferred. */
  finish(): { bytes: Uint8Array; ends: number[] } {
    return { bytes: new Uint8Array(this.out.buffer, 0, this.at), ends: this.ends };
  }
}

/** A Buffer over an ArrayBuffer of its own (never a slice of Node's shared pool): it can be transferred. */
function plainBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/**
 * Appends `rows` to `table` with one binary COPY on `client` (inside the caller's
 * transaction, if it opened one). Resolves with the number of rows Postgres copied; a
 * constraint violation or a bad value rejects with Postgres's error, nothing copied.
 */
export async function copyRowsBinary(
  client: Pick<pg.ClientBase, 'query'>,
  table: string,
  columns: readonly CopyColumn[],
  rows: readonly CopyRow[],
): Promise<number> {
  if (rows.length === 0) return 0;
  const { payload, sql } = copyStatement(table, columns, rows);
  const stream = client.query(copyFrom(sql));
  await pipeline(Readable.from([payload]), stream);
  return stream.rowCount;
}

/**
 * Like copyRowsBinary, then `thenSql` (statements without parameters, or ''), all in ONE
 * round trip: a single simple-query message `COPY …; <thenSql>` written together with the
 * COPY data and its end. Postgres runs the statements of one simple query as one implicit
 * transaction, so the rows and whatever `thenSql` writes are committed together when this
 * resolves, and nothing of them if it rejects (with Postgres's error). The data is sent
 * before Postgres asks for it: should the COPY fail before reading it, the protocol has
 * Postgres drop the CopyData and CopyDone that follow outside copy mode. The client must
 * not be inside an open transaction: the statements would join it and nothing would be
 * committed, so it rejects (AppError internal) unless the connection is idle once they ran.
 * Resolves with the number of rows copied.
 */
export function copyRowsBinaryCommitted(
  client: Pick<pg.ClientBase, 'query' | 'getTransactionStatus'>,
  table: string,
  columns: readonly CopyColumn[],
  rows: readonly CopyRow[],
  thenSql: string,
): Promise<number> {
  const { payload, sql } = copyStatement(table, columns, rows);
  return oneTripCopy(
    client,
    thenSql ? `${sql}; ${thenSql}` : sql,
    payload,
    'I',
    (status) =>
      new AppError(
        'internal',
        `copyRowsBinaryCommitted needs a connection outside any transaction; it ran inside one (status ${String(status)}), so nothing is committed`,
      ),
  );
}

/** A savepoint name left as written: lower case (Postgres folds unquoted names to it), within NAMEDATALEN. */
const SAVEPOINT_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Like copyRowsBinary, inside the caller's open transaction, under a savepoint: ONE round
 * trip, the single simple query `SAVEPOINT <savepoint>; COPY …; RELEASE SAVEPOINT
 * <savepoint>` written together with the COPY data and its end (as copyRowsBinaryCommitted).
 * A COPY between a SAVEPOINT and its RELEASE was three round trips and a stream pipeline
 * per batch; it is one write now. Outside a transaction Postgres refuses the SAVEPOINT
 * (25P01) before the COPY runs, so nothing is stored: free-form statements before the COPY
 * would have let it run, and commit, as an implicit transaction of its own. When any
 * statement fails this rejects with Postgres's error: those after it did not run and the
 * transaction is left failed, for the caller to roll back to the savepoint (set unless the
 * SAVEPOINT itself failed). Rejects (AppError internal) should the connection not be in
 * its transaction once they ran. Resolves with the number of rows copied.
 */
export function copyRowsBinaryInTransaction(
  client: Pick<pg.ClientBase, 'query' | 'getTransactionStatus'>,
  table: string,
  columns: readonly CopyColumn[],
  rows: readonly CopyRow[],
  savepoint: string,
): Promise<number> {
  if (!SAVEPOINT_NAME.test(savepoint)) throw new RangeError(`not a savepoint name: ${JSON.stringify(savepoint)}`);
  const { payload, sql } = copyStatement(table, columns, rows);
  return oneTripCopy(
    client,
    `SAVEPOINT ${savepoint}; ${sql}; RELEASE SAVEPOINT ${savepoint}`,
    payload,
    'T',
    (status) =>
      new AppError(
        'internal',
        `copyRowsBinaryInTransaction needs a connection inside a transaction; it ended outside one (status ${String(status)})`,
      ),
  );
}

/** `text` (a simple query holding one COPY … FROM STDIN) and the COPY data, in one write (OneTripCopy). */
function oneTripCopy(
  client: Pick<pg.ClientBase, 'query' | 'getTransactionStatus'>,
  text: string,
  payload: Buffer,
  expectedStatus: TransactionStatus,
  misplaced: (status: TransactionStatus | null) => Error,
): Promise<number> {
  return new Promise((resolve, reject) => {
    client.query(
      new OneTripCopy(text, payload, () => client.getTransactionStatus(), expectedStatus, misplaced, resolve, reject),
    );
  });
}

type TransactionStatus = NonNullable<ReturnType<pg.ClientBase['getTransactionStatus']>>;

/** The COPY statement for `columns` of `table` and its whole binary payload. */
function copyStatement(
  table: string,
  columns: readonly CopyColumn[],
  rows: readonly CopyRow[],
): { payload: Buffer; sql: string } {
  const payload = encodeCopyBinary(
    columns.map((c) => ('names' in c ? { fields: c.names.length } : c.type)),
    rows,
  );
  const names = columns.flatMap((c) => ('names' in c ? c.names : [c.name]));
  const sql = `COPY ${pg.escapeIdentifier(table)} (${names.map((n) => pg.escapeIdentifier(n)).join(', ')}) FROM STDIN (FORMAT binary)`;
  return { payload, sql };
}

/** CopyData ('d') and CopyDone ('c') message codes of the frontend/backend protocol. */
const COPY_DATA = 0x64;
const COPY_DONE = 0x63;

/** A pg Submittable: the query, the COPY data and its end in one write; settles on ReadyForQuery or the first error. */
class OneTripCopy implements pg.Submittable {
  private copied = 0;
  private failed = false;

  constructor(
    private readonly text: string,
    private readonly payload: Buffer,
    private readonly transactionStatus: () => ReturnType<pg.ClientBase['getTransactionStatus']>,
    /** Where the connection must be once the statements ran: idle ('I') or in a transaction ('T'). */
    private readonly expectedStatus: TransactionStatus,
    private readonly misplaced: (status: TransactionStatus | null) => Error,
    private readonly resolve: (rows: number) => void,
    private readonly reject: (error: Error) => void,
  ) {}

  submit(connection: pg.Connection): void {
    // On connection.stream directly (pg 8.23): pg's sendCopyFromChunk copies the payload, and corking needs the stream.
    const stream = (connection as unknown as { stream: NodeJS.WritableStream & { cork(): void; uncork(): void } })
      .stream;
    const header = Buffer.allocUnsafe(5);
    header[0] = COPY_DATA;
    header.writeUInt32BE(this.payload.length + 4, 1);
    stream.cork();
    connection.query(this.text);
    stream.write(header);
    stream.write(this.payload);
    stream.write(Buffer.from([COPY_DONE, 0, 0, 0, 4]));
    stream.uncork();
  }

  /** Set by pg when a query_timeout applies; called once the query is over, either way. */
  callback(): void {}

  handleCopyInResponse(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  handleCommandComplete(message: { text?: string }): void {
    const match = /^COPY (\d+)/.exec(message.text ?? '');
    if (match?.[1] !== undefined) this.copied = Number(match[1]);
  }

  handleError(error: Error): void {
    this.callback();
    this.failed = true;
    this.reject(error);
  }

  /** pg has set the client's transaction status from this ReadyForQuery before calling here (pg 8.23). */
  handleReadyForQuery(): void {
    this.callback();
    if (this.failed) return;
    const status = this.transactionStatus();
    if (status === this.expectedStatus) this.resolve(this.copied);
    else this.reject(this.misplaced(status));
  }
}
