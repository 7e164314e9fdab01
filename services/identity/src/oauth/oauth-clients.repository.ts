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
