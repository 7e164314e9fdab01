import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest-random-weight) hashing: each user goes to the shard with the highest
 * hash(user, shard). Adding shard N moves only the users whose top score is now N (about
 * 1/(N+1) of them), and nothing else — which is why a rebalance after growing moves the
 * minimum. Only used to PLACE users: where a user lives is then read from the directory
 * table, so changing SHARD_COUNT never silently moves anyone.
 */
export function rendezvousShard(userId: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1)
    throw new Error(`shard count must be a positive integer, got ${shardCount}`);
  let best = 0;
  let bestScore = -1n;
  for (let shard = 0; shard < shardCount; shard += 1) {
    const score = createHash('sha256').update(`${userId}\u0000${shard}`).digest().readBigUInt64BE(0);
    if (score > bestScore) {
      bestScore = score;
      best = shard;
    }
  }
  return best;
}
