import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';

import type { Tx } from '../database/database.module.js';
import type { Env } from '../env.js';
import { hasSecretShape, newSecret, sha256 } from '../secrets.js';
import { SessionsRepository } from './accounts.repository.js';

const SESSION_PREFIX = 'cg_ss_';

/** Browser sessions: an opaque random token in the cookie, its SHA-256 in the row. */
@Injectable()
export class SessionsService {
  constructor(
    private readonly sessions: SessionsRepository,
    @Inject(SERVICE_ENV) private readonly env: Env,
    private readonly clock: Clock,
  ) {}

  /**
   * Opens a session at `now`, the instant of the passkey ceremony (or SSO sign-in) that
   * proved presence: the session's start is what the gateway reads as "last authenticated".
   */
  async open(
    userId: string,
    now: Date,
    tx?: Tx,
    method: 'passkey' | 'sso' = 'passkey',
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = newSecret(SESSION_PREFIX);
    const expiresAt = new Date(now.getTime() + this.env.SESSION_TTL_SECONDS * 1_000);
    await this.sessions.create({ userId, tokenHash: sha256(token), createdAt: now, expiresAt, method }, tx);
    return { token, expiresAt };
  }

  async resolve(token: string) {
    const refused = new AppError('unauthenticated', 'Not signed in');
    if (!hasSecretShape(token, SESSION_PREFIX)) throw refused;
    const session = await this.sessions.findLive(sha256(token), this.clock.date());
    if (!session) throw refused;
    return session;
  }

  async signOut(token: string): Promise<void> {
    if (hasSecretShape(token, SESSION_PREFIX)) await this.sessions.revoke(sha256(token), this.clock.date());
  }
}
