import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import type { OAuthGrant } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { OAuthAudit } from './oauth-audit.js';
import { OAuthClientsRepository } from './oauth-clients.repository.js';
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
    private readonly clients: OAuthClientsRepository,
  ) {}

  /** An admin's view of one application's grants (another org's application: not_found). */
  async listForApplication(orgId: string, applicationId: string): Promise<GrantOut[]> {
    const app = await this.clients.findInOrg(orgId, applicationId);
    if (!app) throw new AppError('not_found', 'No such application');
    return (await this.grants.ofApplication(app, this.clock.date())).map(out);
  }

  /**
   * Every token of the application ends: its grants are deleted, and gateways refuse its
   * access tokens issued until now (client credentials ones too), from the next request.
   */
  async revokeApplication(orgId: string, applicationId: string): Promise<number> {
    const app = await this.clients.findInOrg(orgId, applicationId);
    if (!app) throw new AppError('not_found', 'No such application');
    const revoked = await this.revocations.revoke(
      (tx) => this.grants.revokeApplication(app, tx),
      () => ({ orgId, kind: TokenRevocationKind.APPLICATION, subjectId: applicationId }),
    );
    await this.audit.record({
      action: 'revoked',
      orgId,
      applicationId,
      clientId: app.clientId,
      userId: undefined,
      grantId: undefined,
      operation: 'identity.v1.revoke_application_oauth_tokens',
    });
    return revoked;
  }

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
    const orgId = grant.application.orgId;
    await this.revocations.revoke(
      (tx) => this.store.revokeByGrantId(grantId, tx),
      () => ({ orgId, kind: TokenRevocationKind.GRANT, subjectId: grantId }),
    );
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
    userId: g.accountId,
    createdAt: timestampFromDate(g.createdAt),
    ...(g.expiresAt ? { expiresAt: timestampFromDate(g.expiresAt) } : {}),
  };
}
