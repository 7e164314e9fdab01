import { AppError, type FieldProblem } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { Tx } from '../database/database.module.js';
import type { McpVirtualServer as VirtualServerRow } from '../generated/prisma/client.js';
import { MAX_ORG_TOOLS_BYTES, mcpVirtualServerBytes } from './mcp-tools.js';
import { McpVirtualServersRepository } from './mcp-virtual-servers.repository.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

/** An org's virtual servers; each may select up to 1000 tools, and all travel in the snapshot. */
export const MAX_VIRTUAL_SERVERS = 50;

export interface VirtualServerSpec {
  name: string;
  description: string;
  integrations: readonly string[];
  /** Capabilities `<integration>:<tool>` (shape checked at the NATS edge). */
  tools: readonly string[];
}

/**
 * An org's named virtual servers: selections of its MCP servers' integrations and tools,
 * each served at its own endpoint. They live beside the MCP server registry and travel in
 * the same snapshot, so a gateway never serves a selection newer or older than the rules
 * and tools it decides with; each change bumps the org's revision and is announced on
 * CONTROL like any rule change (in force from the next request).
 */
@Injectable()
export class McpVirtualServersService {
  constructor(
    private readonly repo: McpVirtualServersRepository,
    private readonly rulesRepo: RulesRepository,
    private readonly rules: RulesService,
  ) {}

  /**
   * Creates or replaces the virtual server. Every integration it names (whole or through a
   * tool) must have a registered MCP server now; a tool the catalog has not seen yet is
   * accepted (a server's list is read when a connected person first uses it).
   */
  async put(orgId: string, spec: VirtualServerSpec): Promise<{ server: VirtualServerRow; revision: bigint }> {
    const integrations = [...new Set(spec.integrations)].sort();
    const tools = [...new Set(spec.tools)].sort();
    const result = await this.rulesRepo.transaction(async (tx) => {
      const named = [...new Set([...integrations, ...tools.map((t) => t.slice(0, t.indexOf(':')))])];
      const registered = await this.repo.registeredIntegrations(tx, orgId, named);
      const problems: FieldProblem[] = [
        ...integrations.flatMap((integration) =>
          registered.has(integration)
            ? []
            : [
                {
                  path: `integrations.${spec.integrations.indexOf(integration)}`,
                  message: `no MCP server registered for '${integration}'`,
                },
              ],
        ),
        ...tools.flatMap((tool) =>
          registered.has(tool.slice(0, tool.indexOf(':')))
            ? []
            : [
                {
                  path: `tools.${spec.tools.indexOf(tool)}`,
                  message: `no MCP server registered for '${tool.slice(0, tool.indexOf(':'))}'`,
                },
              ],
        ),
      ];
      if (problems.length > 0)
        throw new AppError(
          'mcp_server_not_registered',
          'A virtual server may only select integrations the organization registered an MCP server for',
          problems,
        );
      // The bump locks the org's revision row first: the caps are checked against a snapshot
      // no other change of the org is altering meanwhile.
      const bumped = await this.rules.bump(tx, orgId, 'mcp_virtual_server_put');
      const selection = { name: spec.name, description: spec.description, integrations, tools };
      await this.checkCaps(tx, orgId, selection);
      const server = await this.repo.upsert(tx, { orgId, ...selection });
      return { server, ...bumped };
    });
    await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }

  /**
   * At most MAX_VIRTUAL_SERVERS per org, and the virtual servers count in the snapshot's MCP
   * budget (MAX_ORG_TOOLS_BYTES) beside the servers' tools: the snapshot travels in one NATS
   * message.
   */
  private async checkCaps(tx: Tx, orgId: string, selection: VirtualServerSpec): Promise<void> {
    const others = await this.rulesRepo.otherMcpSnapshot(tx, orgId, { virtualServer: selection.name });
    if (others.virtualServers >= MAX_VIRTUAL_SERVERS)
      throw new AppError('validation_failed', 'The organization has as many virtual servers as it may have', [
        { path: 'name', message: `at most ${MAX_VIRTUAL_SERVERS} virtual servers per organization` },
      ]);
    if (others.bytes + mcpVirtualServerBytes(selection) > MAX_ORG_TOOLS_BYTES)
      throw new AppError(
        'validation_failed',
        "The org's MCP servers and virtual servers are larger than policy keeps",
        [
          {
            path: 'tools',
            message: `at most ${MAX_ORG_TOOLS_BYTES} bytes for all servers' tools and virtual servers of an org`,
          },
        ],
      );
  }

  list(orgId: string): Promise<VirtualServerRow[]> {
    return this.repo.list(orgId);
  }

  async delete(orgId: string, name: string): Promise<{ server: VirtualServerRow; revision: bigint }> {
    const result = await this.rulesRepo.transaction(async (tx) => {
      const server = await this.repo.delete(tx, orgId, name);
      if (!server) throw new AppError('mcp_virtual_server_not_found', 'No such virtual server in this organization');
      return { server, ...(await this.rules.bump(tx, orgId, 'mcp_virtual_server_deleted')) };
    });
    await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
  }
}
