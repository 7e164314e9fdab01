/**
 * `pnpm audit:verify --public-key <key>`: recomputes the audit log stored in Postgres and
 * checks it against every signed checkpoint, with the log's public key as the auditor
 * pinned it — never one derived from the signing key, which whoever holds the key file
 * (or the token) could swap together with a rewritten log. Exit 0 when intact; exit 1
 * naming the first entry that was edited, deleted, inserted or reordered, or a checkpoint
 * the pinned key did not sign; exit 2 when it cannot run. Reads DATABASE_URL,
 * DATABASE_SCHEMA and AUDIT_LOG_ORIGIN like the service.
 */
import { parseArgs } from 'node:util';

import { createPool } from '@context-gateway/database';

import { loadEnv } from '../env.js';
import { parsePinnedKey, type PinnedKey } from './pinned-key.js';
import { openCheckpointKey } from './signing-key.js';
import { verifyStoredLog } from './verify-stored-log.js';

const USAGE = `usage: pnpm audit:verify --public-key <verifier key | base64 | PEM | file>
       pnpm audit:verify --dev-key-file    (local development only: trusts the local key file)`;

const { values } = parseArgs({
  options: {
    'public-key': { type: 'string' },
    'dev-key-file': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const env = loadEnv();
async function pinnedLogKey(): Promise<PinnedKey> {
  if (values['public-key'] !== undefined) {
    if (values['dev-key-file']) throw new Error('give --public-key or --dev-key-file, not both');
    return parsePinnedKey(values['public-key'], { type: 0x01, defaultName: env.AUDIT_LOG_ORIGIN });
  }
  if (!values['dev-key-file']) {
    throw new Error(
      `no pinned public key. Pass the log's public key as the auditor received it (the service logs it as verifierKey on start).\n${USAGE}`,
    );
  }
  console.error(
    'WARNING --dev-key-file: the public key is derived from the local signing key. Whoever can replace that file and the database can rewrite the log unnoticed; pin the public key (--public-key) anywhere but a development machine.',
  );
  const key = await openCheckpointKey(env, { createIfMissing: false });
  key.signer.close();
  return { publicKey: key.signer.publicKey, name: key.keyName };
}

const pool = createPool({
  url: env.DATABASE_URL,
  schema: env.DATABASE_SCHEMA ?? 'audit',
  max: 2,
  applicationName: 'audit-verify',
  statementTimeoutMs: 0,
});
try {
  const pinned = await pinnedLogKey();
  const started = Date.now();
  const result = await verifyStoredLog(pool, pinned.publicKey, env.AUDIT_LOG_ORIGIN, pinned.name);
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
