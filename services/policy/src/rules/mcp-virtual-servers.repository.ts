import { Inject, Injectable } from '@nestjs/common';

import { POLICY_DB, type PolicyDb, type Tx } from '../database/database.module.js';
import type { McpVirtualServer } from '../generated/prisma/client.js';

/** An org's named virtual servers (gateway mode); the only place they meet Prisma. */
@Injectable()
export class McpVirtualServersRepository {
  constructor(@Inject(POLICY_DB) private readonly db: PolicyDb) {}

  /** The integrations of `orgId` that have a registered MCP server, among `integrations`. */
  async registeredIntegrations(tx: Tx, orgId: string, integrations: readonly string[]): Promise<Set<string>> {
    const rows = await tx.mcpServer.findMany({
      where: { orgId, integration: { in: [...integrations] } },
      select: { integration: true },
    });
    return new Set(rows.map((r) => r.integration));
  }

  upsert(
    tx: Tx,
    server: { orgId: string; name: string; description: string; integrations: string[]; tools: string[] },
  ): Promise<McpVirtualServer> {
    const { orgId, name, ...selection } = server;
    return tx.mcpVirtualServer.upsert({
      where: { orgId_name: { orgId, name } },
      create: server,
      update: selection,
    });
  }

  list(orgId: string): Promise<McpVirtualServer[]> {
    return this.db.mcpVirtualServer.findMany({ where: { orgId }, orderBy: { name: 'asc' } });
  }

  /**
   * Removes the virtual server; undefined when there is none. deleteMany, not delete: of two
   * concurrent deletes the second finds no row, and that is "not found", not an error.
   */
  async delete(tx: Tx, orgId: string, name: string): Promise<McpVirtualServer | undefined> {
    const found = await tx.mcpVirtualServer.findUnique({ where: { orgId_name: { orgId, name } } });
    if (!found) return undefined;
    const { count } = await tx.mcpVirtualServer.deleteMany({ where: { orgId, name } });
    return count === 1 ? found : undefined;
  }
}
