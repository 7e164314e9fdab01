import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { McpServer as McpServerRow } from '../generated/prisma/client.js';
import { MAX_ORG_TOOLS_BYTES, mergeTools, parseTools } from './mcp-tools.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

/** How the gateway authenticates upstream for a person (docs/gateway-mode.md). */
const MCP_SERVER_AUTH = ['connection', 'mcp_oauth', 'none'] as const;
export type McpServerAuth = (typeof MCP_SERVER_AUTH)[number];

/** The wire's auth, checked: empty (a gateway from before the field) is `connection`. */
export function mcpServerAuth(raw: string): McpServerAuth {
  if (raw === '') return 'connection';
  if ((MCP_SERVER_AUTH as readonly string[]).includes(raw)) return raw as McpServerAuth;
  throw new AppError('validation_failed', 'Unknown upstream auth', [
    { path: 'auth', message: `must be one of ${MCP_SERVER_AUTH.join(', ')}` },
  ]);
}

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
    private readonly clock: Clock,
  ) {}

  async put(
    orgId: string,
    integration: string,
    url: string,
    resourceArguments: Record<string, string>,
    auth: McpServerAuth = 'connection',
  ): Promise<{ server: McpServerRow; revision: bigint }> {
    const result = await this.repo.transaction(async (tx) => {
      const server = await this.repo.upsertMcpServer(tx, { orgId, integration, url, resourceArguments, auth });
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

  /**
   * A gateway read the server at `url` (the registration it read may have changed since:
   * then the read is ignored). The catalog takes the read in (mergeTools); it is announced
   * when it changed, else only dated.
   */
  async setTools(
    orgId: string,
    integration: string,
    url: string,
    toolsJson: string,
    retainUnseenMs: number,
  ): Promise<{ server: McpServerRow; revision: bigint }> {
    const read = parseTools(toolsJson);
    const result = await this.repo.transaction(async (tx) => {
      const stored = await this.repo.lockMcpServer(tx, orgId, integration);
      if (!stored) throw new AppError('not_found', 'No such MCP server');
      if (stored.url !== url) return { server: stored, revision: await this.repo.revision(orgId), eventId: undefined };
      const now = this.clock.date();
      const merged = mergeTools(stored, read, now, retainUnseenMs);
      const changed = merged.digest !== stored.toolsDigest;
      if (!changed) {
        const server = await this.repo.storeMcpTools(tx, orgId, integration, merged, changed, now);
        return { server, revision: await this.repo.revision(orgId), eventId: undefined };
      }
      // The bump locks the org's revision row first: the budget is checked against a snapshot
      // no other change of the org (tools or virtual servers) is altering meanwhile.
      const bumped = await this.rules.bump(tx, orgId, 'mcp_tools_set');
      const others = await this.repo.otherMcpSnapshot(tx, orgId, { integration });
      if (others.bytes + Buffer.byteLength(merged.json) > MAX_ORG_TOOLS_BYTES)
        throw new AppError('validation_failed', "The org's MCP servers list more tools than policy keeps", [
          {
            path: 'toolsJson',
            message: `at most ${MAX_ORG_TOOLS_BYTES} bytes for all servers and virtual servers of an org`,
          },
        ]);
      const server = await this.repo.storeMcpTools(tx, orgId, integration, merged, changed, now);
      return { server, ...bumped };
    });
    if (result.eventId) await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }
}
