import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { Application } from '../generated/prisma/client.js';

@Injectable()
export class ApplicationsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(
    data: {
      orgId: string;
      name: string;
      clientId: string;
      callbackUrls: string[];
      integrations: string[];
      scopes: string[];
      clientMetadataUrl?: string | null;
      tokenEndpointAuthMethod?: string;
    },
    tx: Tx = this.db,
  ): Promise<Application> {
    return tx.application.create({ data });
  }

  /** Applies a change and moves the revision on, atomically; undefined when not in this org. */
  async update(
    orgId: string,
    id: string,
    data: { name?: string; callbackUrls?: string[]; integrations?: string[]; scopes?: string[]; status?: string },
    tx: Tx = this.db,
  ): Promise<Application | undefined> {
    const rows = await tx.application.updateManyAndReturn({
      where: { id, orgId },
      data: { ...data, revision: { increment: 1 } },
    });
    return rows[0];
  }

  /** Org-scoped: an application of another organization is simply not found. */
  findInOrg(orgId: string, id: string, tx: Tx = this.db): Promise<Application | null> {
    return tx.application.findFirst({ where: { id, orgId } });
  }

  findById(id: string, tx: Tx = this.db): Promise<Application | null> {
    return tx.application.findUnique({ where: { id } });
  }

  listInOrg(orgId: string, tx: Tx = this.db): Promise<Application[]> {
    return tx.application.findMany({ where: { orgId }, orderBy: { createdAt: 'asc' }, take: 1_000 });
  }

  /** Applications whose latest revision has not been published yet. */
  async unpublished(limit: number, tx: Tx = this.db): Promise<Application[]> {
    const rows = await tx.$queryRaw<
      { id: string }[]
    >`SELECT id FROM applications WHERE published_revision < revision ORDER BY updated_at LIMIT ${limit}`;
    return rows.length === 0 ? [] : tx.application.findMany({ where: { id: { in: rows.map((r) => r.id) } } });
  }

  /** Records that `revision` reached the stream; never moves backwards. */
  async markPublished(id: string, revision: bigint, tx: Tx = this.db): Promise<void> {
    await tx.application.updateMany({
      where: { id, publishedRevision: { lt: revision } },
      data: { publishedRevision: revision },
    });
  }
}
