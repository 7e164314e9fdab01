import type { Pool } from 'pg';

import { rendezvousShard } from './rendezvous.js';

export interface Move {
  userId: string;
  from: number;
  to: number;
}

/**
 * The users whose recorded shard differs from their rendezvous shard over `shardCount`
 * shards: exactly who must move after the shard count changed (growing from N to N+1
 * moves about 1/(N+1) of users, all of them onto the new shard).
 */
export async function planRebalance(pool: Pool, shardCount: number): Promise<Move[]> {
  const { rows } = await pool.query<{ user_id: string; shard: number }>(
    'SELECT user_id, shard FROM personal_servers ORDER BY user_id',
  );
  return rows.flatMap((r) => {
    const to = rendezvousShard(r.user_id, shardCount);
    return to === r.shard ? [] : [{ userId: r.user_id, from: r.shard, to }];
  });
}

/**
 * Moves users, one at a time, copy then switch:
 * - copy: all shards share one Postgres schema today, so the records, grants and key ids
 *   are already where the target shard reads them; this is the step where a deployment
 *   with a database per shard would copy the user's rows (and stop writes for that user
 *   meanwhile) before switching.
 * - switch: one conditional UPDATE of the directory row (`WHERE shard = from`, so a
 *   concurrent rebalance or a stale plan cannot move a user twice). From the commit on,
 *   the old shard refuses the user's queries (`wrong_shard`: ownership is checked in the
 *   query's SQL) and the gateway re-locates the connection and retries once.
 */
export async function applyRebalance(pool: Pool, moves: Move[]): Promise<number> {
  let switched = 0;
  for (const move of moves) {
    const { rowCount } = await pool.query('UPDATE personal_servers SET shard = $3 WHERE user_id = $1 AND shard = $2', [
      move.userId,
      move.from,
      move.to,
    ]);
    if (rowCount === 1) switched += 1;
  }
  return switched;
}
