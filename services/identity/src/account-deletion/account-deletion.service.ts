import { Clock } from '@context-gateway/clock';
import { assertRecentPasskeyUse, LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { SessionsService } from '../accounts/sessions.service.js';
import { IDENTITY_DB, type IdentityDb } from '../database/database.module.js';
import type { Env } from '../env.js';
import { OAuthGrantsService } from '../oauth/oauth-grants.service.js';

/** More OAuth grants than any person holds; a loop that has not emptied the list by then is a bug, not a person. */
const MAX_GRANT_ROUNDS = 20;

/**
 * A person deleting their own gateway account (the portal's last step, after the broker has
 * deleted their connections). Only for the session's own person, and only with a passkey use
 * within the step-up window. What goes: every OAuth grant (revoked through the outbox, so
 * gateways refuse its access tokens from the next request), the authorization server's
 * sessions and interactions of the person, then the user row with its passkeys, sessions,
 * memberships and SSO links (cascade), and their pending passkey ceremonies. What stays: the
 * audit log (append-only and signed; it names the account by id only).
 */
@Injectable()
export class AccountDeletionService {
  constructor(
    private readonly sessions: SessionsService,
    private readonly oauthGrants: OAuthGrantsService,
    @Inject(IDENTITY_DB) private readonly db: IdentityDb,
    @Inject(SERVICE_ENV) private readonly env: Pick<Env, 'PERSON_STEP_UP_MAX_AGE_MS'>,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async delete(sessionToken: string): Promise<{ oauthGrantsRevoked: number }> {
    const session = await this.sessions.resolve(sessionToken);
    assertRecentPasskeyUse(session.createdAt, this.env.PERSON_STEP_UP_MAX_AGE_MS, this.clock.now());
    const userId = session.userId;

    let revoked = 0;
    for (let round = 0; round < MAX_GRANT_ROUNDS; round++) {
      const grants = await this.oauthGrants.list(userId);
      if (grants.length === 0) break;
      for (const grant of grants) {
        await this.oauthGrants.revoke(userId, grant.grantId);
        revoked++;
      }
    }

    await this.db.$transaction(async (tx) => {
      // oidc-provider's rows that still name the person (its browser sessions, interactions).
      await tx.oAuthPayload.deleteMany({ where: { payload: { path: ['accountId'], equals: userId } } });
      await tx.webauthnChallenge.deleteMany({ where: { userId } });
      // Passkeys, sessions, memberships and SSO accounts go with the user (ON DELETE CASCADE).
      await tx.user.delete({ where: { id: userId } });
    });
    this.logger.info({ userId, oauthGrantsRevoked: revoked }, 'account deleted');
    return { oauthGrantsRevoked: revoked };
  }
}
