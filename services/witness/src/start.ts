import { renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { openSigner } from '@context-gateway/crypto';
import { encodeVerifierKey } from '@context-gateway/merkle-log';
import { createLogger } from '@context-gateway/observability';
import type { Logger } from 'pino';

import { CheckpointStore } from './checkpoint-store.js';
import { type Env, trustedLogKeys } from './env.js';
import { witnessHttp } from './http.js';
import { Witness } from './witness.js';

export interface RunningWitness {
  url: string;
  /** The witness's C2SP verifier key (type 0x04, a cosignature key): what a log and its auditors pin. */
  verifierKey: string;
  witness: Witness;
  close(): Promise<void>;
}

/** Opens the key and the store, and listens. */
export async function startWitness(
  env: Env,
  logger: Logger = createLogger({ service: 'witness', level: env.LOG_LEVEL }),
): Promise<RunningWitness> {
  const signer = await openSigner(env, { localPath: resolve(env.WITNESS_SIGNING_KEY_FILE), createIfMissing: true });
  try {
    const logs = trustedLogKeys(env);
    const store = await CheckpointStore.open(resolve(env.WITNESS_STATE_DIR));
    const verifierKey = encodeVerifierKey(env.WITNESS_NAME, signer.publicKey, 0x04);
    if (env.WITNESS_PUBLISH_KEY_FILE !== undefined) {
      // Public; replaced whole, so a reader never sees half a key.
      writeFileSync(`${env.WITNESS_PUBLISH_KEY_FILE}.tmp`, `${verifierKey}\n`, { mode: 0o644 });
      renameSync(`${env.WITNESS_PUBLISH_KEY_FILE}.tmp`, env.WITNESS_PUBLISH_KEY_FILE);
    }
    const witness = new Witness({ name: env.WITNESS_NAME, signer, logs, store, logger });
    const app = await witnessHttp(witness, { logger, bodyLimit: env.WITNESS_BODY_LIMIT_BYTES, verifierKey });
    const address = await app.listen({ host: env.HTTP_HOST, port: env.HTTP_PORT });
    const url = address.replace('0.0.0.0', '127.0.0.1');
    logger.info({ url, verifierKey, logs: [...logs.keys()], provider: env.KEY_PROVIDER }, 'witness listening');
    if (logs.size === 0) logger.warn('witness: WITNESS_LOG_KEYS is empty, every submission will be refused (404)');
    return {
      url,
      verifierKey,
      witness,
      close: async () => {
        await app.close();
        signer.close();
      },
    };
  } catch (error) {
    signer.close();
    throw error;
  }
}
