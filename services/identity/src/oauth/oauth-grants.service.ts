import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import type { OAuthGrant } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { OAuthAudit } from './oauth-audit.js';
import { type GrantRow, OAuthGrantsRepository } from './oauth-grants.repository.js';
import { OAuthStoreRepository } from './oauth-store.repository.js';
import { TokenRevocationEvents, TokenRevocationKind } from './token-revocation-events.js';

type GrantOut = Omit<OAuthGrant, '$typeName' | 'createdAt' | 'expiresAt'> & {
  createdAt: ReturnType<typeof timestampFromDate>;
  expiresAt?: ReturnType<typeof timestampFromDate>;
};

/** A person's view of the applications holding tokens for them, and their revocation. */
@Injectable()
export class OAuthGrantsService {
  constructor(
    private readonly grants: OAuthGrantsRepository,
    private readonly store: OAuthStoreRepository,
    private readonly revocations: TokenRevocationEvents,
    private readonly audit: OAuthAudit,
    private readonly clock: Clock,
  ) {}

  async list(userId: string): Promise<GrantOut[]> {
    return (await this.grants.ofAccount(userId, this.clock.date())).flatMap((g) => (g.application ? [out(g)] : []));
  }

  /**
   * Deletes the grant's codes and refresh tokens, then tells every gateway to refuse its
   * access tokens (awaited: when this returns, the next request with one fails), then audits.
   */
  async revoke(userId: string, grantId: string): Promise<GrantOut> {
    const grant = await this.grants.one(userId, grantId, this.clock.date());
    if (!grant?.application) throw new AppError('not_found', 'No such OAuth grant among yours');
    await this.store.revokeByGrantId(grantId);
    await this.revocations.revoked(grant.application.orgId, TokenRevocationKind.GRANT, grantId);
    await this.audit.record({
      action: 'revoked',
      orgId: grant.application.orgId,
      applicationId: grant.application.id,
      clientId: grant.clientId,
      userId,
      grantId,
      operation: 'identity.v1.revoke_oauth_grant',
    });
    return out(grant);
  }
}

function out(g: GrantRow): GrantOut {
  return {
    grantId: g.grantId,
    orgId: g.application?.orgId ?? '',
    applicationId: g.application?.id ?? '',
    applicationName: g.application?.name ?? '',
    scopes: g.scopes,
    createdAt: timestampFromDate(g.createdAt),
    ...(g.expiresAt ? { expiresAt: timestampFromDate(g.expiresAt) } : {}),
  };
}
