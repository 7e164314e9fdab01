import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb } from '../database/database.module.js';
import type { McpOAuthServer, Prisma } from '../generated/prisma/client.js';

export type { McpOAuthServer };

/** What a registration stores (the key, and everything discovery and client identification found). */
export type McpOAuthServerInput = Omit<McpOAuthServer, 'createdAt' | 'updatedAt' | 'metadata'> & {
  metadata: Prisma.InputJsonValue;
};

/** An org's MCP servers with their own OAuth: one row per (org, integration). */
@Injectable()
export class McpOAuthServersRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  find(orgId: string, integration: string): Promise<McpOAuthServer | null> {
    return this.db.mcpOAuthServer.findUnique({ where: { orgId_integration: { orgId, integration } } });
  }

  list(orgId: string): Promise<McpOAuthServer[]> {
    return this.db.mcpOAuthServer.findMany({ where: { orgId }, orderBy: { integration: 'asc' } });
  }

  upsert(row: McpOAuthServerInput): Promise<McpOAuthServer> {
    const { orgId, integration, ...rest } = row;
    return this.db.mcpOAuthServer.upsert({
      where: { orgId_integration: { orgId, integration } },
      create: row,
      update: rest,
    });
  }

  async delete(orgId: string, integration: string): Promise<boolean> {
    const { count } = await this.db.mcpOAuthServer.deleteMany({ where: { orgId, integration } });
    return count > 0;
  }
}
