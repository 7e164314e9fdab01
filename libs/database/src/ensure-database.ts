import pg from 'pg';

/**
 * Creates the database a URL names if it does not exist yet (connecting to the server's
 * `postgres` maintenance database to do so). Returns true when it created it.
 * Safe to run from several processes at once.
 */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const database = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!database) throw new TypeError('the database URL names no database');
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const client = new pg.Client({ connectionString: maintenance.toString() });
  await client.connect();
  try {
    const existing = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (existing.rowCount) return false;
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
    return true;
  } catch (error) {
    // Another process created it between our check and now: 42P04 duplicate_database,
    // or 23505 when both CREATE DATABASEs race on pg_database's unique index.
    const code = (error as { code?: string }).code;
    if (code === '42P04' || code === '23505') return false;
    throw error;
  } finally {
    await client.end();
  }
}
