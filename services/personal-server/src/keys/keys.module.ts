import { Clock } from '@context-gateway/clock';
import { LOGGER, Metrics, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { RecordKeys } from './record-keys.service.js';

class RecordKeysLifecycle implements OnApplicationShutdown {
  constructor(@Inject(RecordKeys) private readonly keys: RecordKeys) {}
  onApplicationShutdown(): void {
    this.keys.close(); // zero every KEK and data key held in memory
  }
}

/**
 * Every connection row, and every Personal Server whose passkeys were pinned (it has its own
 * key), names a data key the keyring wrapped (migrations ran before this is asked).
 */
export async function countStoredDataKeys(pool: Pick<Pool, 'query'>): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM connections)
           + (SELECT count(*) FROM personal_servers WHERE passkeys_pinned_at IS NOT NULL))::int AS n`,
  );
  // count(*) answers exactly one row.
  return rows[0]?.n ?? 0;
}

/** Data keys of connections (envelope encryption, key files outside the database). */
@Module({
  providers: [
    {
      provide: RecordKeys,
      inject: [SERVICE_ENV, PG_POOL, Clock, Metrics, LOGGER],
      useFactory: async (env: Env, pool: Pool, clock: Clock, metrics: Metrics, logger: Logger) => {
        const keys = await RecordKeys.open(env, () => countStoredDataKeys(pool), clock, metrics.keyStore);
        // Which key store holds this service's KEK (never the key or the PIN).
        logger.info({ keyProvider: env.KEY_PROVIDER }, 'record keys ready');
        return keys;
      },
    },
    RecordKeysLifecycle,
  ],
  exports: [RecordKeys],
})
export class KeysModule {}
