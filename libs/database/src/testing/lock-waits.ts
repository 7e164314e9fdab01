import type pg from 'pg';

/**
 * Polls until `check` holds (every 20 ms, for at most 20 s): a test whose premise never
 * happens fails with a message instead of hanging until its timeout.
 */
export async function until(check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 1_000; i += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the awaited condition never held');
}

/**
 * Resolves once some session waits for a lock on `relation` (as `db`'s search_path resolves
 * it, or schema-qualified and quoted): the moment a test's lock conflict is in place.
 */
export async function untilLockWaited(db: pg.Pool | pg.ClientBase, relation: string): Promise<void> {
  await until(async () => {
    const { rowCount } = await db.query('SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass', [
      relation,
    ]);
    return rowCount !== 0;
  });
}
