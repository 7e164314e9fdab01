import type { Connection, Pool, Submittable } from 'pg';

/**
 * A DataRow value: Postgres's text of it, or, for a column the statement reads in binary
 * (`PreparedStatement.binary`), its raw bytes (a copy); null for NULL.
 */
export type RowField = string | Buffer | null;

/**
 * Reads a statement's rows one at a time, each as its columns in the statement's order
 * (RowField), and makes the statement's answer once they are all in. What it throws fails the
 * statement.
 */
export interface RowReader<T> {
  row(fields: readonly RowField[]): void;
  finish(): T;
}

/**
 * Where patched pg-protocol (patches/pg-protocol@1.16.1.patch) leaves each connection's
 * parser on its socket; the parser keeps the raw bytes of the DataRow columns its
 * `binaryColumns` marks, until the next ReadyForQuery.
 */
const PARSER = Symbol.for('context-gateway.pg-protocol.parser');

interface PatchedParser {
  binaryColumns: readonly boolean[] | undefined;
}

function isPatchedParser(value: unknown): value is PatchedParser {
  return typeof value === 'object' && value !== null && 'binaryColumns' in value;
}

/**
 * Which of a statement's result columns come in Postgres's binary format, made once per
 * statement: the parser's marks and the tail of its Bind messages (the result format codes).
 */
export class BinaryColumns {
  /** Per column, true when it is read in binary: what the patched parser reads. */
  readonly marks: readonly boolean[];
  /** Bind's result-format part: Int16 count, then an Int16 code per column (0 text, 1 binary). */
  readonly formats: Buffer;

  constructor(columns: number, binary: readonly number[]) {
    const marks = Array.from({ length: columns }, () => false);
    for (const at of binary) {
      if (!Number.isInteger(at) || at < 0 || at >= columns)
        throw new Error(`no column ${at} of ${columns} to read in binary`);
      marks[at] = true;
    }
    this.marks = marks;
    this.formats = Buffer.alloc(2 + 2 * columns);
    this.formats.writeInt16BE(columns, 0);
    marks.forEach((mark, i) => this.formats.writeInt16BE(mark ? 1 : 0, 2 + 2 * i));
  }
}

/**
 * A Bind of the unnamed portal to `statement` with text parameters and the result formats
 * given (node-pg's serializer gives every column one format).
 */
export function bindMessage(statement: string, values: readonly (string | null)[], formats: Buffer): Buffer {
  // Int32 length, portal "" and the statement as C strings, 0 parameter format codes (all
  // text), Int16 parameter count, each parameter's Int32 length and bytes, the result formats.
  let length = 4 + 1 + Buffer.byteLength(statement) + 1 + 2 + 2 + formats.length;
  for (const value of values) length += 4 + (value === null ? 0 : Buffer.byteLength(value));
  const message = Buffer.allocUnsafe(1 + length);
  message[0] = 0x42; // 'B'
  message.writeInt32BE(length, 1);
  let at = 5;
  message[at++] = 0;
  at += message.write(statement, at);
  message[at++] = 0;
  at = message.writeInt16BE(0, at);
  at = message.writeInt16BE(values.length, at);
  for (const value of values) {
    if (value === null) {
      at = message.writeInt32BE(-1, at);
      continue;
    }
    const written = message.write(value, at + 4);
    message.writeInt32BE(written, at);
    at += 4 + written;
  }
  at += formats.copy(message, at);
  if (at !== message.length) throw new Error(`a Bind of ${statement} came to ${at} bytes, not ${message.length}`);
  return message;
}

/** node-pg's Connection as a query sees it, with what its typings leave out. */
interface QueryConnection extends Connection {
  /** Named statements prepared on this connection (node-pg sets it on ParseComplete): name → text. */
  parsedStatements: Record<string, string>;
  /** Named statements whose Parse was sent and not yet answered. */
  submittedNamedStatements: Record<string, string>;
  sendCopyFail(message: string): void;
}

type Callback<T> = (error: Error | null, result?: T) => void;

/** One execution of a named statement: see PreparedRows. */
export interface PreparedStatement<T> {
  /** The statement's name on each connection. */
  name: string;
  text: string;
  /** Text parameters (null for NULL). */
  values: readonly (string | null)[];
  /** How many columns each row has. */
  columns: number;
  /** The columns read in binary (their raw bytes), if any; the others as text. */
  binary?: BinaryColumns;
  reader: RowReader<T>;
}

/**
 * One execution of a named prepared statement whose columns the caller knows, its rows
 * handed to a RowReader as text, or as raw bytes for the columns it reads in binary —
 * node-pg's Submittable, the extension point pg-cursor and
 * pg-query-stream use, run by `pool.query` like a Query.
 *
 * What node-pg's own Query does per execution and this does not (docs/perf/README.md,
 * "The page statement in node-pg"): a Describe of the portal, so Postgres sends and the client
 * parses a RowDescription every time (one Field object per column) and builds a parser per
 * column from it; a copy of the query config (property descriptors); an object per row
 * keyed by column name. Nothing is lost by not describing: the reader knows the columns by
 * position from the statement it wrote, and their formats (text, or the binary ones it asked
 * for: docs/perf/README.md, "The shard's bytea columns in binary"), and a prepared
 * statement's result columns cannot change under it — when the schema changes them, Postgres
 * refuses the execution ("cached plan must not change result type"), and the pool, as for
 * any failed query, closes that connection, so the statement is prepared again on the next.
 * A row of another width than `columns` fails the statement (`internal`-worthy: a reader and
 * its statement that disagree).
 *
 * Only run() makes one, and runs it through `pool.query`: what keeps a connection whose
 * prepared statement went stale (0A000, above), or whose reader failed mid-result, from being
 * used again is pg-pool releasing the client with the error, which destroys it. A PoolClient's
 * own query() would keep that connection, and its stale statement.
 */
export class PreparedRows<T> implements Submittable {
  /** Set by node-pg's Client#query (the pool's release-and-answer callback). */
  callback: Callback<T> | undefined;
  /** The first error of a row (the reader's), answered at ReadyForQuery as node-pg's Query does. */
  private failure: Error | undefined;

  private constructor(
    /** The statement's name on each connection; node-pg's client reads `name` and `text` on ParseComplete. */
    readonly name: string,
    readonly text: string,
    private readonly values: readonly (string | null)[],
    private readonly columns: number,
    private readonly binary: BinaryColumns | undefined,
    private readonly reader: RowReader<T>,
  ) {}

  /** Runs it on a pooled connection; the pool releases the connection (and drops it after an error). */
  static run<T>(pool: Pool, statement: PreparedStatement<T>): Promise<T> {
    const { name, text, values, columns, binary, reader } = statement;
    if (binary !== undefined && binary.marks.length !== columns)
      return Promise.reject(new Error(`${name} reads ${binary.marks.length} columns' formats for ${columns} columns`));
    const query = new PreparedRows(name, text, values, columns, binary, reader);
    // pg-pool's query() runs a Submittable like a Query and answers with what it calls back;
    // @types/pg types the Submittable form as returning the query itself.
    return (pool.query(query) as unknown as Promise<T>).catch((error: unknown) => {
      // node-pg makes a Postgres error on the socket's data event: its stack names no caller.
      // Client#query does the same for its promise form.
      if (typeof error === 'object' && error !== null) Error.captureStackTrace(error);
      throw error;
    });
  }

  submit(connection: Connection): Error | null {
    const con = connection as QueryConnection;
    // Fields of node-pg's Connection that its typings leave out: if a release renames them,
    // fail every statement loudly rather than prepare a name twice or never.
    if (!isRecord(con.parsedStatements) || !isRecord(con.submittedNamedStatements))
      return new Error('node-pg internals changed: PreparedRows needs parsedStatements/submittedNamedStatements');
    const prepared = con.parsedStatements[this.name] ?? con.submittedNamedStatements[this.name];
    if (prepared !== undefined && prepared !== this.text)
      return new Error(`Prepared statements must be unique - '${this.name}' was used for a different statement`);
    // Binary columns need pg-protocol's patch: unpatched, it would decode their bytes as UTF-8.
    let binary: { parser: PatchedParser; marks: readonly boolean[]; bind: Buffer } | undefined;
    if (this.binary) {
      const parser = (con.stream as unknown as Record<symbol, unknown>)[PARSER];
      if (!isPatchedParser(parser))
        return new Error(
          'pg-protocol is not patched (patches/pg-protocol@1.16.1.patch): PreparedRows cannot read binary columns',
        );
      binary = { parser, marks: this.binary.marks, bind: bindMessage(this.name, this.values, this.binary.formats) };
    }
    // Parse (first time on this connection), Bind, Execute, Sync in one write.
    con.stream.cork();
    try {
      if (prepared === undefined) {
        con.parse({ name: this.name, text: this.text, types: [] }, true);
        con.submittedNamedStatements[this.name] = this.text;
      }
      if (binary) {
        // This execution's rows are the next DataRows on this connection: node-pg's Client
        // refuses a custom query class (a Submittable such as this) in pipeline mode ("Custom
        // query classes such as pg-cursor and pg-query-stream are not supported in pipeline
        // mode"), so nothing else is on the wire until its ReadyForQuery, where the parser
        // forgets the marks.
        binary.parser.binaryColumns = binary.marks;
        if (con.stream.writable) con.stream.write(binary.bind);
      } else {
        // Text parameters (no value mapping: they are strings already), text results.
        con.bind({ statement: this.name, values: this.values as (string | null)[] }, true);
      }
      con.execute({}, true);
      con.sync();
    } finally {
      con.stream.uncork();
    }
    return null;
  }

  handleDataRow(message: { fields: RowField[] }): void {
    if (this.failure) return;
    try {
      if (message.fields.length !== this.columns)
        throw new Error(`${this.name} gave a row of ${message.fields.length} columns, not ${this.columns}`);
      this.reader.row(message.fields);
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
    }
  }

  handleReadyForQuery(): void {
    if (this.failure) {
      this.answer(this.failure);
      return;
    }
    let result: T;
    try {
      result = this.reader.finish();
    } catch (error) {
      this.answer(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.answer(null, result);
  }

  /** A Postgres error (ErrorResponse), a dead connection, or the refusal submit() returned. */
  handleError(error: Error): void {
    this.answer(this.failure ?? error);
  }

  /** Never described, so never sent a RowDescription; nothing to do if one came. */
  handleRowDescription(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  /** Only for an Execute with a row limit, which this never sends. */
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: Connection): void {
    (connection as QueryConnection).sendCopyFail('No source stream defined');
  }
  handleCopyData(): void {}

  private answer(error: Error | null, result?: T): void {
    const callback = this.callback;
    this.callback = undefined;
    callback?.(error, result);
  }
}

/** The one value of a statement that gives one row of one column. */
class OneValue implements RowReader<RowField> {
  private values: RowField[] = [];
  row(fields: readonly RowField[]): void {
    this.values.push(fields[0] ?? null);
  }
  finish(): RowField {
    if (this.values.length !== 1) throw new Error(`expected one row, got ${this.values.length}`);
    return this.values[0] ?? null;
  }
}

/** What `SELECT '\x00ff'::bytea` read in binary must give. */
const BINARY_PROBE = Buffer.from([0x00, 0xff]);

/**
 * Rejects unless `pool` reads a column in binary as its bytes: one PreparedRows of
 * `SELECT '\x00ff'::bytea` with that column marked must give the bytes 00 ff. Without
 * pg-protocol's patch every statement with binary columns fails (`internal`) while readiness
 * stays green, so a shard runs this once at boot (RecordsRepository.onModuleInit) and does not
 * start if it rejects.
 */
export async function checkBinaryColumns(pool: Pool): Promise<void> {
  const value = await PreparedRows.run(pool, {
    name: 'ps_binary_probe',
    text: "SELECT '\\x00ff'::bytea",
    values: [],
    columns: 1,
    binary: new BinaryColumns(1, [0]),
    reader: new OneValue(),
  });
  if (!Buffer.isBuffer(value) || !value.equals(BINARY_PROBE))
    throw new Error(
      `PreparedRows read SELECT '\\x00ff'::bytea in binary as ${JSON.stringify(value)}, not the bytes 00 ff: ` +
        'is pg-protocol patched (patches/pg-protocol@1.16.1.patch)?',
    );
}

function isRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null;
}

/**
 * A string[] parameter as the text of a Postgres array (PreparedRows sends text): every
 * element quoted, backslash and double quote escaped, as node-pg writes one — so no element
 * is read as NULL, and braces, commas and spaces stay inside it.
 */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}
