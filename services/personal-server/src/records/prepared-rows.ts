import type { Connection, Pool, Submittable } from 'pg';

/**
 * Reads a statement's rows one at a time, each as Postgres's text of its columns in the
 * statement's order (null for NULL), and makes the statement's answer once they are all in.
 * What it throws fails the statement.
 */
export interface RowReader<T> {
  row(fields: readonly (string | null)[]): void;
  finish(): T;
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
  reader: RowReader<T>;
}

/**
 * One execution of a named prepared statement whose columns the caller knows, its rows
 * handed to a RowReader as text — node-pg's Submittable, the extension point pg-cursor and
 * pg-query-stream use, run by `pool.query` like a Query.
 *
 * What node-pg's own Query does per execution and this does not (docs/perf/README.md,
 * "The page statement in node-pg"): a Describe of the portal, so Postgres sends and the client
 * parses a RowDescription every time (one Field object per column) and builds a parser per
 * column from it; a copy of the query config (property descriptors); an object per row
 * keyed by column name. Nothing is lost by not describing: the reader knows the columns by
 * position from the statement it wrote, every value comes as text, and a prepared
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
    private readonly reader: RowReader<T>,
  ) {}

  /** Runs it on a pooled connection; the pool releases the connection (and drops it after an error). */
  static run<T>(pool: Pool, statement: PreparedStatement<T>): Promise<T> {
    const { name, text, values, columns, reader } = statement;
    const query = new PreparedRows(name, text, values, columns, reader);
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
    // Parse (first time on this connection), Bind, Execute, Sync in one write.
    con.stream.cork();
    try {
      if (prepared === undefined) {
        con.parse({ name: this.name, text: this.text, types: [] }, true);
        con.submittedNamedStatements[this.name] = this.text;
      }
      // Text parameters (no value mapping: they are strings already), text results.
      con.bind({ statement: this.name, values: this.values as (string | null)[] }, true);
      con.execute({}, true);
      con.sync();
    } finally {
      con.stream.uncork();
    }
    return null;
  }

  handleDataRow(message: { fields: (string | null)[] }): void {
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
