/**
 * Recognizes "the database is not reachable right now" in whatever shape it reaches a
 * handler, so that AppError.from answers it as a coded 503 (`service_unavailable`, retry
 * later) instead of a 500 `internal`: a Postgres restart is an outage of a dependency, not
 * a bug. Structural on purpose — libs/errors depends on neither pg nor Prisma — and it
 * looks at three shapes:
 * - node-postgres: the socket error (ECONNREFUSED, ...), a server error with a SQLSTATE
 *   of class 08 (connection exception) or 57P01–57P03 (admin shutdown, crash shutdown,
 *   cannot connect now: the server is stopping or still starting), 53300 (too many
 *   connections), or one of pg's own messages for a dropped connection or a pool wait
 *   that timed out (they carry no code);
 * - Prisma's driver adapter (DriverAdapterError): `cause.kind` DatabaseNotReachable,
 *   ConnectionClosed, SocketTimeout, TooManyConnections, or a `postgres` kind whose
 *   originalCode is one of the SQLSTATEs above;
 * - Prisma's client errors: P1001 (not reachable), P1002 (timed out), P1008 (socket
 *   timeout), P1017 (connection closed), P2024 (pool timeout), P2037 (too many
 *   connections), and the driver adapter error it carries in `meta.driverAdapterError`.
 * A `fetch failed` (an outside HTTP call) is not the database: the walk stops there.
 */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);
const PG_MESSAGES = [
  'Connection terminated unexpectedly',
  'Connection terminated due to connection timeout',
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
];

interface ErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  syscall?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: unknown };
}

const isSqlState = (code: unknown): boolean =>
  typeof code === 'string' && (code.startsWith('08') || SQLSTATES.has(code)) && code.length === 5;

function matches(error: ErrorShape): boolean {
  const { code, message } = error;
  if (typeof code === 'string') {
    if (SOCKET_CODES.has(code) && typeof error.syscall === 'string') return true;
    if (isSqlState(code) || PRISMA_CODES.has(code)) return true;
  }
  if (error.name === 'DriverAdapterError' && typeof error.cause === 'object' && error.cause !== null) {
    const cause = error.cause as { kind?: unknown; originalCode?: unknown };
    if (typeof cause.kind === 'string' && ADAPTER_KINDS.has(cause.kind)) return true;
    if (cause.kind === 'postgres' && isSqlState(cause.originalCode)) return true;
  }
  return typeof message === 'string' && PG_MESSAGES.some((m) => message === m || message.startsWith(`${m}:`));
}

export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  // A short walk: wrappers (Prisma's, ours) rarely nest more than three deep.
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const shape = current as ErrorShape;
    if (shape.name === 'TypeError' && shape.message === 'fetch failed') return false;
    if (matches(shape)) return true;
    const adapterError = shape.meta?.driverAdapterError;
    if (typeof adapterError === 'object' && adapterError !== null && matches(adapterError)) return true;
    current = shape.cause;
  }
  return false;
}
