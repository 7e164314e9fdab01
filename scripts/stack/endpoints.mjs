// @ts-check
// Pure helpers that turn the connection URLs people pass in into what the start script
// needs: where to probe, which port an embedded server should take, and whether starting
// one here would even help (we never try to start a "local" server for a remote host).

const DEFAULT_PORT_BY_PROTOCOL = /** @type {Record<string, number>} */ ({
  'postgres:': 5432,
  'postgresql:': 5432,
  'nats:': 4222,
  'tls:': 4222,
});

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0']);

/**
 * @typedef {{ host: string, port: number, user: string, password: string, database: string, isLocal: boolean }} Endpoint
 */

/**
 * Splits a postgres:// or nats:// URL into the parts the start script uses.
 * @param {string} url
 * @returns {Endpoint}
 */
export function parseEndpoint(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`not a valid URL: ${redactUrl(url)}`);
  }
  const fallbackPort = DEFAULT_PORT_BY_PROTOCOL[parsed.protocol];
  if (fallbackPort === undefined) {
    throw new Error(`unsupported URL scheme "${parsed.protocol}" in ${redactUrl(url)}`);
  }
  const port = parsed.port === '' ? fallbackPort : Number(parsed.port);
  // URL keeps IPv6 literals bracketed; sockets want them bare.
  const host = (parsed.hostname || 'localhost').replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
    isLocal: LOCAL_HOSTS.has(host),
  };
}

/**
 * The same URL pointing at another database on the same server (used to reach the
 * `postgres` maintenance database before ours exists).
 * @param {string} url
 * @param {string} database
 */
export function withDatabase(url, database) {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/**
 * URLs end up in log lines and error messages; passwords must not.
 * @param {string} url
 */
export function redactUrl(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

/**
 * The address to probe a service on: a service bound to all interfaces is reached locally.
 * @param {string | undefined} httpHost
 * @param {number} port
 */
export function serviceBaseUrl(httpHost, port) {
  const host = !httpHost || httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost;
  const shown = host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}
