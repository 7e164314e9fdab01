import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { Organization } from '../generated/prisma/client.js';

@Injectable()
export class OrganizationsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(data: { slug: string; name: string }, tx: Tx = this.db): Promise<Organization> {
    return tx.organization.create({ data });
  }

  findById(id: string, tx: Tx = this.db): Promise<Organization | null> {
    return tx.organization.findUnique({ where: { id } });
  }

  list(tx: Tx = this.db): Promise<Organization[]> {
    return tx.organization.findMany({ orderBy: { createdAt: 'asc' }, take: 1_000 });
  }
}
