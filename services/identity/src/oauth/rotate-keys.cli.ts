/**
 * `pnpm --filter @context-gateway/identity oauth:rotate-keys`: adds a new generation of
 * the authorization server's keys (ES256 and RS256 signing keys, a cookie key) and
 * retires all but the previous generation. No restart: running identity processes
 * re-read the keys every 5 minutes, publish the new ones at once and sign with them after
 * OAUTH_KEY_ACTIVATION_SECONDS; the previous generation stays published meanwhile.
 * Reads the service's environment (DATABASE_URL, DATABASE_SCHEMA, OAUTH_KEYRING_FILE / MASTER_KEY_FILE).
 */
import { systemClock } from '@context-gateway/clock';
import { EnvelopeCipher, openKeyProvider } from '@context-gateway/crypto';
import { createPool, createPrismaAdapter, serviceSchemaName } from '@context-gateway/database';

import { loadEnv, oauthKeyringPath } from '../env.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { OAuthKeyStore } from './oauth-keys.js';
import { OAuthKeysRepository } from './oauth-keys.repository.js';

const env = loadEnv();
const schema = env.DATABASE_SCHEMA ?? serviceSchemaName('identity');
const pool = createPool({ url: env.DATABASE_URL, schema, max: 2, applicationName: 'identity-rotate-keys' });
const db = new PrismaClient({ adapter: createPrismaAdapter(pool, schema) });
try {
  // Never a fresh keyring here: the existing keys must stay readable.
  const keyring = await openKeyProvider(env, { localPath: oauthKeyringPath(env), createIfMissing: false });
  const store = new OAuthKeyStore(new OAuthKeysRepository(db), new EnvelopeCipher(keyring), systemClock);
  try {
    console.log(JSON.stringify(await store.rotate()));
  } finally {
    keyring.close();
  }
} catch (error) {
  console.error(`oauth:rotate-keys failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.$disconnect();
  await pool.end();
}
