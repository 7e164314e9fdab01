/**
 * `node dist/credentials.cli.js <dir> [--tls-host <name>]...`: the NATS identities for
 * containers, where scripts/ is not in the image (compose's `nats-credentials` service).
 * Like `pnpm nats:credentials` it keeps the seeds it finds and writes the missing ones, then
 * lays the folder out so each container mounts one piece (layOutNatsCredentials); with
 * `--tls-host`, also a CA and the server's certificate for those names.
 */
import { parseArgs } from 'node:util';

import { layOutNatsCredentials } from './nats-credentials.js';

const { values, positionals } = parseArgs({
  options: { 'tls-host': { type: 'string', multiple: true } },
  allowPositionals: true,
});
const [dir] = positionals;
if (!dir || positionals.length !== 1) {
  console.error('usage: node dist/credentials.cli.js <dir> [--tls-host <name>]...');
  process.exit(2);
}
try {
  const tlsHosts = values['tls-host'];
  const keys = await layOutNatsCredentials(dir, tlsHosts ? { tlsHosts } : {});
  for (const [identity, key] of Object.entries(keys)) console.log(`${identity.padEnd(18)} ${key}`);
} catch (error) {
  console.error(`nats credentials failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
