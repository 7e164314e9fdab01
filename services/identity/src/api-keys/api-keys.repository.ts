import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { ApiKey } from '../generated/prisma/client.js';

export type ApiKeyWithApplicationStatus = ApiKey & { application: { status: string } };

@Injectable()
export class ApiKeysRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(
    data: { orgId: string; applicationId: string; secretHash: string; prefix: string },
    tx: Tx = this.db,
  ): Promise<ApiKey> {
    return tx.apiKey.create({ data });
  }

  /** The per-request lookup: one unique-index probe on the key's hash. */
  findByHash(secretHash: string, tx: Tx = this.db): Promise<ApiKeyWithApplicationStatus | null> {
    return tx.apiKey.findUnique({ where: { secretHash }, include: { application: { select: { status: true } } } });
  }

  findInApplication(applicationId: string, id: string, tx: Tx = this.db): Promise<ApiKey | null> {
    return tx.apiKey.findFirst({ where: { id, applicationId } });
  }

  listInApplication(applicationId: string, tx: Tx = this.db): Promise<ApiKey[]> {
    return tx.apiKey.findMany({ where: { applicationId }, orderBy: { createdAt: 'asc' }, take: 1_000 });
  }

  /** Revokes once; returns false when the key was already revoked or is not this application's. */
  async revoke(applicationId: string, id: string, now: Date, tx: Tx = this.db): Promise<boolean> {
    const { count } = await tx.apiKey.updateMany({
      where: { id, applicationId, revokedAt: null },
      data: { revokedAt: now },
    });
    return count === 1;
  }

  /** Sets last_used_at unless another replica did so within `olderThanMs`: at most one write a minute per key. */
  async touch(id: string, now: Date, olderThanMs: number, tx: Tx = this.db): Promise<void> {
    const before = new Date(now.getTime() - olderThanMs);
    await tx.apiKey.updateMany({
      where: { id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: before } }] },
      data: { lastUsedAt: now },
    });
  }
}
