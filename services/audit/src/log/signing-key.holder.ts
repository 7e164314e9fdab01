import { LOGGER, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { type CheckpointKey, openOrCreateCheckpointKey } from './signing-key.js';

/** Opens the checkpoint signing key once (see signing-key.ts for where it lives and why). */
@Injectable()
export class SigningKeyHolder implements OnModuleDestroy {
  private key: Promise<CheckpointKey> | undefined;

  constructor(
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get(): Promise<CheckpointKey> {
    this.key ??= openOrCreateCheckpointKey(this.env, this.pool).then(
      (key) => {
        // Public: the key auditors pin (`pnpm audit:verify --public-key <this>`).
        this.logger.info({ verifierKey: key.verifierKey }, 'audit checkpoint signing key opened');
        return key;
      },
      (error: unknown) => {
        this.key = undefined;
        throw error;
      },
    );
    return this.key;
  }

  async onModuleDestroy(): Promise<void> {
    const key = await this.key?.catch(() => undefined);
    key?.signer.close();
  }
}
