#!/usr/bin/env node
// @ts-check
// NATS identities and JetStream set-up (docs/trust-boundaries.md, "NATS"):
//   pnpm nats:credentials <dir>  one nkey seed per service and the bootstrap in <dir> (kept if
//                                present) and <dir>/auth.conf, the nats-server users with their
//                                rights generated from the proto catalog. Run again after a
//                                catalog change; the seeds stay.
//   pnpm nats:bootstrap          creates or updates every JetStream stream and creates every
//                                durable consumer. Services cannot: run it before them.
//     NATS_URL (default nats://127.0.0.1:4222), NATS_NKEY_SEED_FILE (the bootstrap's seed, when
//     the server requires credentials), NATS_TLS_CA_FILE, NATS_STREAM_REPLICAS (default 1; 3
//     in a cluster).
// Runs the built libs/messaging: run `pnpm build` first.
import { importMessagingLib } from './stack/nats-auth.mjs';

const USAGE = 'usage: node scripts/nats.mjs credentials <dir> | bootstrap';

/** @param {string[]} args */
async function main(args) {
  const messaging = await importMessagingLib();
  const [command, dir] = args;
  if (command === 'credentials' && dir) {
    const keys = messaging.writeNatsCredentials(dir);
    for (const [identity, key] of Object.entries(keys)) console.log(`${identity.padEnd(18)} ${key}`);
    console.log(`seeds: ${dir}/<identity>.nk (secret, one per service)   users: ${dir}/auth.conf (public)`);
    return 0;
  }
  if (command === 'bootstrap') {
    await messaging.runNatsBootstrap(process.env);
    return 0;
  }
  console.error(USAGE);
  return 2;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`nats: ${/** @type {Error} */ (error).message}`);
  process.exitCode = 1;
}
