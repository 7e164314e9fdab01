/**
 * `pnpm audit:verify`: recomputes the audit log stored in Postgres and checks it against
 * every signed checkpoint. Exit 0 when intact; exit 1 naming the first entry that was
 * edited, deleted, inserted or reordered. Reads the same environment as the service
 * (DATABASE_URL, DATABASE_SCHEMA, MASTER_KEY_FILE / AUDIT_SIGNING_KEY_FILE, AUDIT_LOG_ORIGIN).
 */
import { createPool } from '@context-gateway/database';

import { loadEnv } from '../env.js';
import { loadOrCreateSigningKey, signingKeyPath } from './signing-key.js';
import { verifyStoredLog } from './verify-stored-log.js';

const env = loadEnv();
const keyFile = signingKeyPath(env);
const pool = createPool({
  url: env.DATABASE_URL,
  schema: env.DATABASE_SCHEMA ?? 'audit',
  max: 2,
  applicationName: 'audit-verify',
  statementTimeoutMs: 0,
});
try {
  const key = await loadOrCreateSigningKey(keyFile, env.AUDIT_LOG_ORIGIN, { create: false });
  const started = Date.now();
  const result = await verifyStoredLog(pool, key.publicKey, env.AUDIT_LOG_ORIGIN);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.ok) {
    console.log(
      `audit log intact: ${result.treeSize} entries, root ${result.rootHash}, ${result.checkpointsMatched} signed checkpoints matched (${seconds}s)`,
    );
  } else {
    console.log(
      `AUDIT LOG TAMPERED: ${result.kind} at index ${result.index}${result.eventId ? ` (event ${result.eventId})` : ''}: ${result.detail}`,
    );
    process.exitCode = 1;
  }
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(`audit:verify failed: ${(error as Error).message}`);
  process.exitCode = 2;
} finally {
  await pool.end();
}
