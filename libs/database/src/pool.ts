import pg from 'pg';

import { assertSchemaName } from './schema-name.js';

export interface PoolOptions {
  /** postgres:// URL of the database (not of the schema). */
  url: string;
  /** The schema every connection of this pool works in (its `search_path`). */
  schema: string;
  /** Shown in pg_stat_activity, so an operator can tell which service holds a connection. */
  applicationName: string;
  /** Most connections open at once. Default 10. */
  max?: number;
  /**
   * Longest a single statement may run before Postgres cancels it. Default 15 s: a
   * request path never needs longer, and a runaway query must not hold a connection.
   */
  statementTimeoutMs?: number;
  /** How long to wait for a free connection (or a new one) before failing. Default 5 s. */
  connectionTimeoutMs?: number;
  /** Called for errors on connections, idle or checked out (e.g. Postgres restarted); they are otherwise dropped. */
  onError?: (error: Error) => void;
}

/**
 * A pg pool bound to one schema. The schema and the statement timeout travel in the
 * startup packet (`options`), so they hold for every connection from its first query,
 * including the ones Prisma and the migration runner take. So do the time zone (UTC) and
 * the date style (ISO): every time column is a timestamptz, which node-pg parses with its
 * offset in any zone, but a timestamptz's text is then the same whatever the server's
 * configuration — the form the Personal Server's page statement formats without a Date
 * (services/personal-server/src/records/pg-time.ts) — and no statement depends on a zone.
 * An `options` parameter of the URL is kept, before ours: node-pg would otherwise let it
 * replace them, and the later `-c` of a setting wins.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const schema = assertSchemaName(options.schema);
  const statementTimeoutMs = options.statementTimeoutMs ?? 15_000;
  const { connectionString, urlOptions } = withoutOptions(options.url);
  const ours = `-c search_path=${schema} -c statement_timeout=${statementTimeoutMs} -c TimeZone=UTC -c DateStyle=ISO`;
  const pool = new pg.Pool({
    connectionString,
    application_name: options.applicationName,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    options: urlOptions ? `${urlOptions} ${ours}` : ours,
  });
  // Without a listener, an idle connection dropped by the server would crash the process.
  pool.on('error', (error) => options.onError?.(error));
  // The same for a connection that is checked out (a transaction between two statements, a
  // writer holding one): pg-pool removes its idle listener then, and a Postgres restart
  // (57P01 to every backend) arriving while no statement runs would be an unhandled 'error'
  // event. The client is then not queryable: its next statement fails (a coded 503, see
  // libs/errors) and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', (error) => options.onError?.(error));
  });
  return pool;
}

/** The URL without its `options` parameter, and that parameter (decoded) if it had one. */
function withoutOptions(url: string): { connectionString: string; urlOptions?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { connectionString: url };
  }
  const urlOptions = parsed.searchParams.get('options');
  if (urlOptions === null) return { connectionString: url };
  parsed.searchParams.delete('options');
  return { connectionString: parsed.toString(), urlOptions: urlOptions.trim() || undefined };
}

/**
 * Readiness probe: true when the database answers `SELECT 1` within `timeoutMs`.
 * Never throws, so a health endpoint can call it without its own error handling.
 */
export async function pingDatabase(pool: pg.Pool, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const ping = pool.query<{ ok: number }>('SELECT 1 AS ok').then(
    (result) => result.rows[0]?.ok === 1,
    () => false,
  );
  try {
    return await Promise.race([ping, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
