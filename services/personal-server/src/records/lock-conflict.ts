import { AppError } from '@context-gateway/errors';

/**
 * SQLSTATEs of a write that lost a lock conflict, which the same write tried again resolves:
 * chosen as the deadlock victim (40P01) or out of its lock_timeout (55P03) — both while a
 * migration takes its locks during a rolling deploy. (No write runs SERIALIZABLE or
 * REPEATABLE READ, so a serialization failure, 40001, cannot happen.)
 */
const LOCK_CONFLICTS: ReadonlySet<string> = new Set(['40P01', '55P03']);

/**
 * Rethrows a lost lock conflict as `service_unavailable` (503, retry later): the sync-worker
 * then tries the write again, instead of counting an `internal` failure. Anything else is
 * rethrown as it is.
 */
export function rethrowLockConflict(error: unknown): never {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && LOCK_CONFLICTS.has(code))
    throw new AppError('service_unavailable', 'The write lost a lock conflict with a migration; retry later', [], {
      cause: error,
    });
  throw error;
}
