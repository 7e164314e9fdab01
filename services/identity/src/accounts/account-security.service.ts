import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { assertRecentPasskeyUse, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';

import type { Env } from '../env.js';
import type { Passkey, Session } from '../generated/prisma/client.js';
import { SessionsRepository, UsersRepository } from './accounts.repository.js';
import { SessionsService } from './sessions.service.js';

/**
 * A person's own passkeys and sessions, always for the person whose session token the call
 * carries: listing them, naming a passkey, removing one (a recent passkey use needed, never the last
 * one) and ending every other session (a lost laptop, a shared computer).
 */
@Injectable()
export class AccountSecurityService {
  constructor(
    private readonly sessions: SessionsService,
    private readonly sessionRows: SessionsRepository,
    private readonly users: UsersRepository,
    @Inject(SERVICE_ENV) private readonly env: Env,
    private readonly clock: Clock,
  ) {}

  async overview(token: string): Promise<{ passkeys: Passkey[]; sessions: Session[]; currentId: string }> {
    const current = await this.sessions.resolve(token);
    const [passkeys, sessions] = await Promise.all([
      this.users.listPasskeys(current.userId),
      this.sessionRows.listLive(current.userId, this.clock.date()),
    ]);
    passkeys.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    return { passkeys, sessions, currentId: current.id };
  }

  /**
   * A person's passkeys' public keys, by user id, for the Personal Server that pins them. Not
   * session-bound: the caller is personal-server alone (NATS permissions), and public keys
   * grant nothing; what the Personal Server pins is its own decision (docs/personal-server.md).
   */
  publicKeys(userId: string): Promise<Passkey[]> {
    return this.users.listPasskeys(userId);
  }

  async removePasskey(token: string, passkeyId: string): Promise<void> {
    const current = await this.sessions.resolve(token);
    // A stolen session alone must not be able to strip the person of their own credentials.
    assertRecentPasskeyUse(current.createdAt, this.env.PERSON_STEP_UP_MAX_AGE_MS, this.clock.now());
    const outcome = await this.users.transaction((tx) =>
      this.users.removePasskeyUnlessLast(current.userId, passkeyId, tx),
    );
    if (outcome === 'missing') throw new AppError('not_found', 'No such passkey');
    if (outcome === 'last')
      throw new AppError('conflict', 'This is your only passkey: add another one before removing it');
  }

  /** Names a passkey (no fresh passkey use needed: a name grants nothing). */
  async renamePasskey(token: string, passkeyId: string, name: string): Promise<void> {
    const current = await this.sessions.resolve(token);
    if (!(await this.users.renamePasskey(current.userId, passkeyId, name.trim())))
      throw new AppError('not_found', 'No such passkey');
  }

  async signOutOthers(token: string): Promise<number> {
    const current = await this.sessions.resolve(token);
    return this.sessionRows.revokeOthers(current.userId, current.id, this.clock.date());
  }
}
