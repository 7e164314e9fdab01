import { AppError } from '@context-gateway/errors';
import { PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import type { Pool } from 'pg';
import { Inject, Injectable } from '@nestjs/common';
import { dirname, join, resolve } from 'node:path';
import type { Env } from '../env.js';
import { loadOrCreateSigningKey, type SigningKey } from './signing-key.js';

/** Loads the checkpoint signing key once (see signing-key.ts for where it lives and why). */
@Injectable()
export class SigningKeyHolder {
  private key: Promise<SigningKey> | undefined;

  constructor(
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(PG_POOL) private readonly pool: Pool,
  ) {}

  get(): Promise<SigningKey> {
    const path = resolve(this.env.AUDIT_SIGNING_KEY_FILE ?? join(dirname(this.env.MASTER_KEY_FILE), 'audit-signing.key'));
    this.key ??= loadOrCreateSigningKey(path, this.env.AUDIT_LOG_ORIGIN, { beforeCreate: (missing) => this.refuseWhileCheckpointsExist(missing) }).catch((error: unknown) => {
      this.key = undefined;
      throw error;
    });
    return this.key;
  }

  /**
   * A new key would sign the next checkpoints under another identity: auditors holding the
   * old public key could no longer verify them, and a log swapped under a fresh key would
   * look just as valid. Only a log with no checkpoints yet gets a key generated for it.
   */
  private async refuseWhileCheckpointsExist(path: string): Promise<void> {
    const { rows } = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM checkpoints');
    if (rows[0]!.n > 0) {
      throw new AppError('key_file_missing', `The audit signing key ${path} does not exist, but ${rows[0]!.n} checkpoints signed with it are stored: restore the key file`);
    }
  }
}
