import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { assertRecentPasskeyUse, LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { SessionsService } from '../accounts/sessions.service.js';
import type { Env } from '../env.js';
import { OAuthGrantsService } from '../oauth/oauth-grants.service.js';
import { TokenRevocationEvents, TokenRevocationKind } from '../oauth/token-revocation-events.js';

/** More OAuth grants than any person holds; a loop that has not emptied the list by then is a bug, not a person. */
const MAX_GRANT_ROUNDS = 20;
/**
 * A person's tokens may come from applications of any organization: the person-wide
 * revocation names no one organization (gateways key person revocations by the person alone).
 */
const EVERY_ORGANIZATION = '00000000-0000-0000-0000-000000000000';

/**
 * A person deleting their own gateway account (the portal's last step, after the broker has
 * deleted their connections). Only for the session's own person, and only with a passkey use
 * within the step-up window. What goes: every OAuth grant (each revoked and audited), then,
 * in one transaction with a person-wide `tokens_revoked` event (so an access token of a grant
 * made meanwhile is refused too, from the next request), every authorization-server row that
 * names the person (grants, refresh tokens, sessions), their pending passkey ceremonies, and
 * the user row with its passkeys, sessions, memberships and SSO links (cascade). What stays:
 * the audit log (append-only and signed; it names the account by id only). Idempotent: what
 * is already gone is skipped, so a retry after a partial failure finishes the job.
 */
@Injectable()
export class AccountDeletionService {
  constructor(
    private readonly sessions: SessionsService,
    private readonly oauthGrants: OAuthGrantsService,
    private readonly revocations: TokenRevocationEvents,
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
        // Revoked meanwhile (a second request, the person in another tab): already done.
        const done = await this.oauthGrants.revoke(userId, grant.grantId).then(
          () => true,
          (error: unknown) => {
            if (AppError.from(error).code === 'not_found') return false;
            throw error;
          },
        );
        if (done) revoked++;
      }
    }

    await this.revocations.revoke(
      async (tx) => {
        // oidc-provider's rows that name the person (grants, refresh tokens, sessions). Its
        // interactions name them deeper in the payload; they expire within the hour.
        await tx.oAuthPayload.deleteMany({ where: { payload: { path: ['accountId'], equals: userId } } });
        await tx.webauthnChallenge.deleteMany({ where: { userId } });
        // Passkeys, sessions, memberships and SSO accounts go with the user (ON DELETE CASCADE).
        return (await tx.user.deleteMany({ where: { id: userId } })).count;
      },
      (deleted) =>
        deleted > 0 ? { orgId: EVERY_ORGANIZATION, kind: TokenRevocationKind.USER, subjectId: userId } : undefined,
    );
    this.logger.info({ userId, oauthGrantsRevoked: revoked }, 'account deleted');
    return { oauthGrantsRevoked: revoked };
  }
}
