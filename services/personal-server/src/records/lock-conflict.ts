import { isLockConflict } from '@context-gateway/database';
import { AppError } from '@context-gateway/errors';

/**
 * Rethrows a lost lock conflict (isLockConflict: the deadlock victim, or out of its
 * lock_timeout — both while a migration takes its locks during a rolling deploy) as
 * `service_unavailable` (503, retry later): the sync-worker then tries the write again, instead
 * of counting an `internal` failure. Anything else is rethrown as it is. (No write runs
 * SERIALIZABLE or REPEATABLE READ, so a serialization failure, 40001, cannot happen.)
 */
export function rethrowLockConflict(error: unknown): never {
  if (isLockConflict(error))
    throw new AppError('service_unavailable', 'The write lost a lock conflict with a migration; retry later', [], {
      cause: error,
    });
  throw error;
}
