import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb } from '../database/database.module.js';
import { type Application, Prisma } from '../generated/prisma/client.js';

/** Applications as OAuth clients: the provider reads them; the client settings are written here. */
@Injectable()
export class OAuthClientsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  /** Active applications only: a disabled application is an unknown client on the very next request. */
  findByClientId(clientId: string): Promise<Application | null> {
    return this.db.application.findFirst({ where: { clientId, status: 'active' } });
  }

  /** Org-scoped: an application of another organization is simply not found. */
  findInOrg(orgId: string, id: string): Promise<Application | null> {
    return this.db.application.findFirst({ where: { id, orgId } });
  }

  /** The person a token names (`sub`); null once the account is gone. */
  findUser(id: string): Promise<{ id: string; displayName: string } | null> {
    return this.db.user.findUnique({ where: { id }, select: { id: true, displayName: true } });
  }

  /** Whether some organization allows this metadata URL (an active application names it). */
  async metadataUrlAllowed(url: string): Promise<boolean> {
    return (await this.db.application.count({ where: { clientMetadataUrl: url, status: 'active' }, take: 1 })) > 0;
  }

  /**
   * The applications a person may authorize a metadata-URL client as: the active ones with
   * that URL in the organizations the person is a member of. Usually one; none when their
   * organization did not allow the client.
   */
  metadataUrlApplicationsOf(url: string, userId: string): Promise<Application[]> {
    return this.db.application.findMany({
      where: { clientMetadataUrl: url, status: 'active', organization: { memberships: { some: { userId } } } },
      orderBy: { createdAt: 'asc' },
      take: 10,
    });
  }

  /** The organizations a person is a member of (where a refusal is audited). */
  async organizationsOf(userId: string): Promise<string[]> {
    const rows = await this.db.membership.findMany({ where: { userId }, select: { orgId: true }, take: 50 });
    return rows.map((r) => r.orgId);
  }

  /** Records which application a metadata-URL client's grant acts as (decided once, at consent). */
  async bindGrant(binding: {
    grantId: string;
    applicationId: string;
    orgId: string;
    accountId: string;
    clientId: string;
    expiresAt: Date | null;
  }): Promise<void> {
    await this.db.oAuthGrantApplication.upsert({
      where: { grantId: binding.grantId },
      create: binding,
      update: {},
    });
  }

  /**
   * The application a grant acts as, while it is active and its person still a member of its
   * organization; null otherwise (the grant then yields no more tokens).
   */
  async boundApplication(grantId: string): Promise<Application | null> {
    const binding = await this.db.oAuthGrantApplication.findUnique({ where: { grantId } });
    if (!binding) return null;
    return this.db.application.findFirst({
      where: {
        id: binding.applicationId,
        status: 'active',
        clientMetadataUrl: binding.clientId,
        organization: { memberships: { some: { userId: binding.accountId } } },
      },
    });
  }

  /** A grant's binding as recorded (for the audit of its revocation, even once the application is gone). */
  grantBinding(grantId: string): Promise<{ applicationId: string; orgId: string } | null> {
    return this.db.oAuthGrantApplication.findUnique({
      where: { grantId },
      select: { applicationId: true, orgId: true },
    });
  }

  /** The application's OAuth client settings; undefined when the application does not exist. */
  async updateClientSettings(
    applicationId: string,
    data: {
      tokenEndpointAuthMethod?: string;
      clientSecretHash?: string | null;
      /** A JWK Set of public keys. */
      jwks?: { keys: object[] } | null;
      jwksUri?: string | null;
      idpClientId?: string | null;
    },
  ): Promise<Application | undefined> {
    const { jwks, ...rest } = data;
    const rows = await this.db.application.updateManyAndReturn({
      where: { id: applicationId },
      data: {
        ...rest,
        ...(jwks === undefined
          ? {}
          : { jwks: jwks === null ? Prisma.DbNull : (jwks as unknown as Prisma.InputJsonValue) }),
      },
    });
    return rows[0];
  }
}
