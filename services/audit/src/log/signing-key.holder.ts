import { refuseNewKeyWhileInUse } from '@context-gateway/crypto';
import { PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';

import type { Env } from '../env.js';
import { LogRepository } from './log.repository.js';
import { loadOrCreateSigningKey, type SigningKey, signingKeyPath } from './signing-key.js';

/** Loads the checkpoint signing key once (see signing-key.ts for where it lives and why). */
@Injectable()
export class SigningKeyHolder {
  private key: Promise<SigningKey> | undefined;
  private readonly path: string;

  constructor(
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(PG_POOL) private readonly pool: Pool,
  ) {
    this.path = signingKeyPath(env);
  }

  get(): Promise<SigningKey> {
    // A new key would sign the next checkpoints under another identity: auditors holding the
    // old public key could no longer verify them, and a log swapped under a fresh key would
    // look just as valid. Only a log with no checkpoints yet gets a key generated for it.
    const beforeCreate = refuseNewKeyWhileInUse(
      () => LogRepository.asWriterRole(this.pool, (db) => LogRepository.checkpointCount(db)),
      'checkpoints signed with it',
    );
    this.key ??= loadOrCreateSigningKey(this.path, this.env.AUDIT_LOG_ORIGIN, { beforeCreate }).catch(
      (error: unknown) => {
        this.key = undefined;
        throw error;
      },
    );
    return this.key;
  }
}
