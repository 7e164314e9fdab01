import { AppError, type FieldProblem } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { McpVirtualServer as VirtualServerRow } from '../generated/prisma/client.js';
import { McpVirtualServersRepository } from './mcp-virtual-servers.repository.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

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
      const server = await this.repo.upsert(tx, {
        orgId,
        name: spec.name,
        description: spec.description,
        integrations,
        tools,
      });
      return { server, ...(await this.rules.bump(tx, orgId, 'mcp_virtual_server_put')) };
    });
    await this.rules.announce([result.eventId]);
    return { server: result.server, revision: result.revision };
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
