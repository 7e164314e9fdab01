/**
 * `node dist/credentials.cli.js <dir>`: the NATS identities for containers, where scripts/
 * is not in the image (compose's `nats-credentials` service). Like `pnpm nats:credentials`
 * it keeps the seeds it finds and writes the missing ones, then lays the folder out so each
 * container mounts one piece (layOutNatsCredentials).
 */
import { layOutNatsCredentials } from './nats-credentials.js';

const [dir] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node dist/credentials.cli.js <dir>');
  process.exit(2);
}
try {
  const keys = layOutNatsCredentials(dir);
  for (const [identity, key] of Object.entries(keys)) console.log(`${identity.padEnd(18)} ${key}`);
} catch (error) {
  console.error(`nats credentials failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
