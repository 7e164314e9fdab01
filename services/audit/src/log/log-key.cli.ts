/**
 * `pnpm audit:log-key [--out <file>]`: prints the audit log's verifier key, the public key
 * auditors pin (`audit:verify --public-key`) and a witness trusts (`WITNESS_LOG_KEYS`), and
 * writes it to `<file>` when given. It opens the checkpoint signing key from the service's key
 * store (KEY_PROVIDER) and creates it only while the log has no signed checkpoint, as the
 * service does on its first checkpoint, so the key can be pinned before the service ever
 * runs (docker-compose.yml's `audit-log-key` does this for the witness). Reads the service's
 * environment. Exit 0 with the key; exit 2 when it cannot open or create one.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createPool } from '@context-gateway/database';
import { databaseUrl } from '@context-gateway/service-kit';

import { loadEnv } from '../env.js';
import { openOrCreateCheckpointKey } from './signing-key.js';

const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });

async function main(): Promise<string> {
  // Inside the try below: an environment that does not validate is exit 2 with its message.
  const env = loadEnv();
  const pool = createPool({
    url: databaseUrl(env),
    schema: env.DATABASE_SCHEMA ?? 'audit',
    max: 1,
    applicationName: 'audit-log-key',
  });
  try {
    const key = await openOrCreateCheckpointKey(env, pool);
    key.signer.close();
    return key.verifierKey;
  } finally {
    await pool.end();
  }
}

try {
  const verifierKey = await main();
  if (values.out !== undefined) {
    // Public, but replaced whole: a reader never sees half a key.
    writeFileSync(`${values.out}.tmp`, `${verifierKey}\n`, { mode: 0o644 });
    renameSync(`${values.out}.tmp`, values.out);
  }
  console.log(verifierKey);
} catch (error) {
  console.error(`audit:log-key failed: ${(error as Error).message}`);
  process.exitCode = 2;
}
