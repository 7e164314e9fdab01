import { createLogger } from '@context-gateway/observability';

import { loadEnv, WitnessEnvError } from './env.js';
import { startWitness } from './start.js';

try {
  const env = loadEnv();
  const logger = createLogger({ service: 'witness', level: env.LOG_LEVEL });
  const running = await startWitness(env, logger).catch((error: unknown) => {
    logger.fatal({ err: (error as Error).message }, 'witness failed to start');
    throw error;
  });
  const stop = () => {
    void running.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  if (error instanceof WitnessEnvError) console.error(error.message);
  process.exitCode = 1;
}
