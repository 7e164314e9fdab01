import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb } from '../database/database.module.js';
import type { Application, OAuthRegistrationToken } from '../generated/prisma/client.js';

/** Initial access tokens (RFC 7591 §3) and the applications registered with them. */
@Injectable()
export class OAuthRegistrationRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(data: {
    id: string;
    orgId: string;
    tokenHash: string;
    createdBy: string;
    singleUse: boolean;
    expiresAt: Date;
  }): Promise<OAuthRegistrationToken> {
    return this.db.oAuthRegistrationToken.create({ data });
  }

  listInOrg(orgId: string): Promise<OAuthRegistrationToken[]> {
    return this.db.oAuthRegistrationToken.findMany({ where: { orgId }, orderBy: { createdAt: 'desc' }, take: 1_000 });
  }

  /** Idempotent: the first revocation's time stays. Undefined when not in this organization. */
  async revoke(orgId: string, id: string, at: Date): Promise<OAuthRegistrationToken | undefined> {
    await this.db.oAuthRegistrationToken.updateMany({ where: { id, orgId, revokedAt: null }, data: { revokedAt: at } });
    return (await this.db.oAuthRegistrationToken.findFirst({ where: { id, orgId } })) ?? undefined;
  }

  /** A token that may still register a client now: not revoked, not expired, not spent. */
  usable(tokenHash: string, now: Date): Promise<OAuthRegistrationToken | null> {
    return this.db.oAuthRegistrationToken.findFirst({
      where: {
        tokenHash,
        revokedAt: null,
        expiresAt: { gt: now },
        OR: [{ singleUse: false }, { useCount: 0 }],
      },
    });
  }

  /**
   * Spends one use of the token and creates the application, atomically: a single-use token
   * raced by two registrations registers one client, the other finds it spent (undefined).
   */
  registerApplication(
    tokenId: string,
    now: Date,
    app: {
      name: string;
      clientId: string;
      callbackUrls: string[];
      tokenEndpointAuthMethod: string;
      clientSecretHash: string | null;
      jwks: { keys: object[] } | null;
    },
  ): Promise<{ token: OAuthRegistrationToken; application: Application } | undefined> {
    return this.db.$transaction(async (tx) => {
      const spent = await tx.oAuthRegistrationToken.updateManyAndReturn({
        where: {
          id: tokenId,
          revokedAt: null,
          expiresAt: { gt: now },
          OR: [{ singleUse: false }, { useCount: 0 }],
        },
        data: { useCount: { increment: 1 } },
      });
      const token = spent[0];
      if (!token) return undefined;
      const { jwks, ...rest } = app;
      const application = await tx.application.create({
        data: {
          ...rest,
          ...(jwks ? { jwks: jwks } : {}),
          orgId: token.orgId,
          integrations: [],
          // Default deny: the organization's admin grants capabilities afterwards.
          scopes: [],
          registrationTokenId: token.id,
        },
      });
      return { token, application };
    });
  }
}
