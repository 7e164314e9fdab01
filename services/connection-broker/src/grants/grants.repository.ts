import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import type { Grant } from '../generated/prisma/client.js';

export type { Grant };

/** Which grant a revocation means: the app's grant on a connection, optionally pinned to a user and an org. */
export interface GrantMatch {
  applicationId: string;
  connectionId: string;
  userId?: string;
  orgId?: string;
}

/** Grants: one row per (application, connection). */
@Injectable()
export class GrantsRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  /** Runs `work` in one transaction: a grant change and its outbox event commit together or not at all. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction((tx) => work(tx));
  }

  /** Creates the app's grant, or re-activates it with the new scopes (revision + 1). */
  upsert(
    tx: Tx,
    data: { orgId: string; applicationId: string; userId: string; connectionId: string; scopes: string[] },
  ): Promise<Grant> {
    return tx.grant.upsert({
      where: { applicationId_connectionId: { applicationId: data.applicationId, connectionId: data.connectionId } },
      create: data,
      update: { scopes: data.scopes, status: 'active', revokedAt: null, revision: { increment: 1 } },
    });
  }

  findActiveMatching(where: GrantMatch, tx: Tx = this.db): Promise<Grant | null> {
    return tx.grant.findFirst({ where: { ...where, status: 'active' } });
  }

  /** Revokes one grant; null when there is no active grant matching. */
  async revoke(tx: Tx, where: GrantMatch, now: Date): Promise<Grant | null> {
    const grant = await this.findActiveMatching(where, tx);
    if (!grant) return null;
    return tx.grant.update({
      where: { id: grant.id },
      data: { status: 'revoked', revokedAt: now, revision: { increment: 1 } },
    });
  }

  /** The integration of a grant's connection (events and shards name it). */
  async integrationOf(tx: Tx, grant: Grant): Promise<string> {
    const connection = await tx.connection.findUniqueOrThrow({
      where: { id: grant.connectionId },
      select: { integration: true },
    });
    return connection.integration;
  }

  activeOnConnection(tx: Tx, connectionId: string): Promise<Grant[]> {
    return tx.grant.findMany({ where: { connectionId, status: 'active' } });
  }
}
