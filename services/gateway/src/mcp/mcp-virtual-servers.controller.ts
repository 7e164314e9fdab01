import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { type McpServer, type McpVirtualServer, rpc } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import type { Env } from '../env.js';
import { Route } from '../http/route.decorator.js';
import { mcpServerView } from './mcp-server-view.js';
import {
  mcpVirtualServerListSchema,
  mcpVirtualServerParams,
  mcpVirtualServerSchema,
  mcpVirtualServersParams,
  putMcpVirtualServerBody,
} from './mcp-virtual-servers.schemas.js';

const adminErrors = ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field'] as const;

/**
 * An org's named virtual servers (gateway mode, docs/gateway-mode.md): each a chosen set of
 * the org's MCP servers' integrations and tools, served at `/mcp/v/<name>`. Stored by policy
 * beside the MCP server registry; a change is in force from the next request.
 */
@Controller('v1/admin/organizations/:orgId/mcp-virtual-servers')
export class McpVirtualServersController {
  private readonly publicUrl: string;

  constructor(
    private readonly rpcClient: RpcClient,
    @Inject(SERVICE_ENV) env: Env,
  ) {
    this.publicUrl = env.GATEWAY_PUBLIC_URL.replace(/\/+$/, '');
  }

  @Route({
    method: 'PUT',
    path: ':name',
    summary: 'Create or replace a virtual server',
    description:
      'Defines the virtual server `name` as the tools of `integrations` (whole: with their resources and prompts) ' +
      'and the single `tools` (`<integration>:<tool>`). Agents reach it at `/mcp/v/<name>`, where `tools/list` shows ' +
      'the selection as far as policy allows and any other tool is unknown. Every integration named must have a ' +
      'registered MCP server (`mcp_server_not_registered`); a tool not listed yet is accepted and shown in `unavailable`.',
    tags: ['mcp-admin'],
    audit: { action: 'admin_change' },
    auth: 'operator',
    params: mcpVirtualServerParams,
    body: putMcpVirtualServerBody,
    success: { status: 200, schema: mcpVirtualServerSchema, description: 'Stored; in force from the next request.' },
    errors: [...adminErrors, 'mcp_server_not_registered'],
  })
  async put(
    @Param() p: z.infer<typeof mcpVirtualServerParams>,
    @Body() body: z.infer<typeof putMcpVirtualServerBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: p.orgId, resource: `mcp_virtual_server:${p.name}` });
    const reply = await this.rpcClient.request(rpc.policy.putMcpVirtualServer, {
      orgId: p.orgId,
      name: p.name,
      description: body.description ?? '',
      integrations: body.integrations ?? [],
      tools: body.tools ?? [],
    });
    if (!reply.server) throw new Error('policy answered no virtual server');
    return this.present(reply.server, await this.servers(p.orgId));
  }

  @Route({
    method: 'GET',
    path: '',
    summary: "The org's virtual servers",
    tags: ['mcp-admin'],
    auth: 'operator',
    params: mcpVirtualServersParams,
    success: { status: 200, schema: mcpVirtualServerListSchema, description: 'Each virtual server, by name.' },
    errors: [...adminErrors],
  })
  async list(@Param() p: z.infer<typeof mcpVirtualServersParams>) {
    const [reply, servers] = await Promise.all([
      this.rpcClient.request(rpc.policy.listMcpVirtualServers, { orgId: p.orgId }),
      this.servers(p.orgId),
    ]);
    return { servers: reply.servers.map((v) => this.present(v, servers)) };
  }

  @Route({
    method: 'GET',
    path: ':name',
    summary: 'One virtual server',
    tags: ['mcp-admin'],
    auth: 'operator',
    params: mcpVirtualServerParams,
    success: { status: 200, schema: mcpVirtualServerSchema, description: 'The virtual server.' },
    errors: [...adminErrors, 'mcp_virtual_server_not_found'],
  })
  async get(@Param() p: z.infer<typeof mcpVirtualServerParams>) {
    const { servers } = await this.list(p);
    const found = servers.find((v) => v.name === p.name);
    if (!found)
      throw new AppError('mcp_virtual_server_not_found', 'No virtual server of that name in this organization');
    return found;
  }

  @Route({
    method: 'DELETE',
    path: ':name',
    summary: 'Remove a virtual server',
    description: 'Its endpoint answers 404 `mcp_virtual_server_not_found` from the next request.',
    tags: ['mcp-admin'],
    audit: { action: 'admin_change' },
    auth: 'operator',
    params: mcpVirtualServerParams,
    success: { status: 200, schema: mcpVirtualServerSchema, description: 'Removed (as it was).' },
    errors: [...adminErrors, 'mcp_virtual_server_not_found'],
  })
  async remove(@Param() p: z.infer<typeof mcpVirtualServerParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: p.orgId, resource: `mcp_virtual_server:${p.name}` });
    const reply = await this.rpcClient.request(rpc.policy.deleteMcpVirtualServer, { orgId: p.orgId, name: p.name });
    if (!reply.server) throw new Error('policy answered no virtual server');
    return this.present(reply.server, await this.servers(p.orgId));
  }

  private async servers(orgId: string): Promise<McpServer[]> {
    return (await this.rpcClient.request(rpc.policy.listMcpServers, { orgId })).servers;
  }

  private present(wire: McpVirtualServer, servers: McpServer[]): z.infer<typeof mcpVirtualServerSchema> {
    const views = new Map(servers.map((s) => [s.integration, mcpServerView(s)]));
    const unavailable = [
      ...wire.integrations.filter((integration) => !views.has(integration)),
      ...wire.tools.filter((tool) => {
        const colon = tool.indexOf(':');
        return !views.get(tool.slice(0, colon))?.tools.has(tool.slice(colon + 1));
      }),
    ];
    return {
      name: wire.name,
      description: wire.description,
      integrations: [...wire.integrations],
      tools: [...wire.tools],
      url: `${this.publicUrl}/mcp/v/${wire.name}`,
      unavailable,
      updatedAt: wire.updatedAt ? timestampDate(wire.updatedAt).toISOString() : '',
    };
  }
}
