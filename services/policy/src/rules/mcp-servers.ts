import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { McpServer as McpServerRow } from '../generated/prisma/client.js';
import { canonicalTools } from './mcp-tools.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

/**
 * An org's remote MCP servers. Registering, removing and every change to a server's tool
 * list bump the org's policy revision (its capabilities change), announced like any rule
 * change: a gateway deciding after the call returned knows the new catalog.
 */
@Injectable()
export class McpServersService {
  constructor(
    private readonly repo: RulesRepository,
    private readonly rules: RulesService,
  ) {}

  async put(
    orgId: string,
    integration: string,
    url: string,
    resourceArguments: Record<string, string>,
  ): Promise<{ server: McpServerRow; revision: bigint }> {
    const result = await this.repo.transaction(async (tx) => {
      const server = await this.repo.upsertMcpServer(tx, { orgId, integration, url, resourceArguments });
      return { server, ...(await this.rules.bump(tx, orgId, 'mcp_server_put')) };
    });
    await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }

  list(orgId: string): Promise<McpServerRow[]> {
    return this.repo.mcpServers(orgId);
  }

  async delete(orgId: string, integration: string): Promise<{ server: McpServerRow; revision: bigint }> {
    const result = await this.repo.transaction(async (tx) => {
      const server = await this.repo.deleteMcpServer(tx, orgId, integration);
      if (!server) throw new AppError('not_found', 'No such MCP server');
      return { server, ...(await this.rules.bump(tx, orgId, 'mcp_server_deleted')) };
    });
    await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }

  /** A fresh tool list: stored and announced when it differs from the stored one, else only dated. */
  async setTools(
    orgId: string,
    integration: string,
    toolsJson: string,
  ): Promise<{ server: McpServerRow; revision: bigint }> {
    const tools = canonicalTools(toolsJson);
    const result = await this.repo.transaction(async (tx) => {
      const server = await this.repo.setMcpTools(tx, orgId, integration, tools);
      if (!server) throw new AppError('not_found', 'No such MCP server');
      if (!server.changed) return { server: server.row, revision: await this.repo.revision(orgId), eventId: undefined };
      return { server: server.row, ...(await this.rules.bump(tx, orgId, 'mcp_tools_set')) };
    });
    if (result.eventId) await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }
}
