import { pino } from 'pino';

import { provisionJetStream } from './jetstream-streams.js';
import { connectNats } from './nats-connection.js';
import { readUserSeed } from './nats-credentials.js';
import { inboxPrefix, NATS_BOOTSTRAP_IDENTITY } from './nats-permissions.js';

/**
 * The JetStream bootstrap step, as `pnpm nats:bootstrap` (scripts/nats.mjs) and the
 * one-shot container or Job of compose and deploy/ (`node <messaging>/dist/bootstrap.cli.js`)
 * run it: connects as the bootstrap identity and creates or updates every stream and durable
 * consumer of the catalog. Env: NATS_URL (default nats://127.0.0.1:4222), NATS_NKEY_SEED_FILE
 * (the bootstrap's seed, when the server requires credentials), NATS_TLS_CA_FILE,
 * NATS_STREAM_REPLICAS (1, 3 or 5; default 1).
 */
export async function runNatsBootstrap(env: NodeJS.ProcessEnv): Promise<void> {
  const url = env.NATS_URL || 'nats://127.0.0.1:4222';
  const replicas = Number(env.NATS_STREAM_REPLICAS ?? '1');
  if (![1, 3, 5].includes(replicas)) throw new Error('NATS_STREAM_REPLICAS must be 1, 3 or 5');
  const logger = pino({ name: 'nats-bootstrap', base: undefined });
  const seedFile = env.NATS_NKEY_SEED_FILE;
  const nc = await connectNats({
    url,
    name: 'bootstrap',
    logger,
    bootTimeoutMs: 30_000,
    inboxPrefix: inboxPrefix(NATS_BOOTSTRAP_IDENTITY),
    ...(seedFile ? { seed: readUserSeed(seedFile) } : {}),
    ...(env.NATS_TLS_CA_FILE ? { tlsCaFile: env.NATS_TLS_CA_FILE } : {}),
  });
  try {
    await provisionJetStream(nc, logger, replicas);
  } finally {
    await nc.close();
  }
}
