import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import { dirname, join, resolve } from 'node:path';
import type { Env } from '../env.js';
import { loadOrCreateSigningKey, type SigningKey } from './signing-key.js';

/** Loads the checkpoint signing key once (see signing-key.ts for where it lives and why). */
@Injectable()
export class SigningKeyHolder {
  private key: Promise<SigningKey> | undefined;

  constructor(@Inject(SERVICE_ENV) private readonly env: Env) {}

  get(): Promise<SigningKey> {
    const path = resolve(this.env.AUDIT_SIGNING_KEY_FILE ?? join(dirname(this.env.MASTER_KEY_FILE), 'audit-signing.key'));
    this.key ??= loadOrCreateSigningKey(path, this.env.AUDIT_LOG_ORIGIN).catch((error: unknown) => {
      this.key = undefined;
      throw error;
    });
    return this.key;
  }
}
