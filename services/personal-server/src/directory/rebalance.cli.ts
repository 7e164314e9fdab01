import { createPool } from '@context-gateway/database';

import { loadEnv } from '../env.js';
import { applyRebalance, planRebalance } from './rebalance.js';

// Moves users to the shard rendezvous hashing gives them over SHARD_COUNT shards.
//   SHARD_COUNT=3 node services/personal-server/dist/directory/rebalance.cli.js          (plan only)
//   SHARD_COUNT=3 node services/personal-server/dist/directory/rebalance.cli.js --apply  (move)
// Run it after every shard process runs with the new SHARD_COUNT (docs/personal-server.md).
const env = loadEnv();
const apply = process.argv.includes('--apply');
const pool = createPool({
  url: env.DATABASE_URL,
  schema: env.DATABASE_SCHEMA ?? 'personal_server',
  applicationName: 'personal-server-rebalance',
  max: 2,
});
try {
  const moves = await planRebalance(pool, env.SHARD_COUNT);
  const byRoute = new Map<string, number>();
  for (const m of moves) byRoute.set(`${m.from} → ${m.to}`, (byRoute.get(`${m.from} → ${m.to}`) ?? 0) + 1);
  console.log(`${moves.length} user(s) to move for SHARD_COUNT=${env.SHARD_COUNT}${moves.length ? ':' : ''}`);
  for (const [route, n] of byRoute) console.log(`  shard ${route}: ${n}`);
  if (apply && moves.length > 0) {
    const switched = await applyRebalance(pool, moves);
    console.log(`switched ${switched} (${moves.length - switched} had moved meanwhile and were left alone)`);
  } else if (moves.length > 0) {
    console.log('plan only: run again with --apply to move them');
  }
} finally {
  await pool.end();
}
