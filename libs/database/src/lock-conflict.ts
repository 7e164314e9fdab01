/**
 * SQLSTATEs of a lost table lock conflict, which the same statement tried again a moment later
 * can win: deadlock_detected (Postgres aborted it to break a cycle) and lock_not_available (a
 * `lock_timeout` ran out). Seen by a migration taking its locks while writes are in flight, and
 * by those writes.
 */
const LOCK_CONFLICTS: ReadonlySet<string> = new Set(['40P01', '55P03']);

/** Whether `error` is Postgres refusing a statement for a lost lock conflict (LOCK_CONFLICTS). */
export function isLockConflict(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && LOCK_CONFLICTS.has(code);
}
