import { RpcClient } from '@context-gateway/messaging';
import { type McpOAuthServer, type McpServer, rpc } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import type { Env } from '../env.js';
import { Route } from '../http/route.decorator.js';
import {
  mcpServerListSchema,
  mcpServerParams,
  mcpServerSchema,
  mcpServersParams,
  putMcpServerBody,
} from './mcp.schemas.js';
import { gatewayToolName, mcpServerView } from './mcp-server-view.js';
import { McpToolCatalog } from './mcp-tool-catalog.js';
import { checkUpstreamUrl } from './upstream-fetch.js';

const adminErrors = ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field'] as const;

type ClientSource = NonNullable<z.infer<typeof mcpServerSchema>['oauth']>['clientSource'];

function present(wire: McpServer, oauth?: McpOAuthServer): z.infer<typeof mcpServerSchema> {
  const view = mcpServerView(wire);
  return {
    integration: view.integration,
    url: view.url,
    auth: view.auth,
    oauth:
      view.auth === 'mcp_oauth' && oauth
        ? {
            resource: oauth.resource,
            issuer: oauth.issuer,
            clientSource: oauth.clientSource as ClientSource,
            scopes: [...oauth.scopes],
            redirectUri: oauth.redirectUri,
          }
        : null,
    resourceArguments: { ...view.resourceArguments },
    toolsReadAt: view.toolsReadAt?.toISOString() ?? null,
    tools: [...view.tools.values()].map((tool) => ({
      name: tool.name,
      capability: `${view.integration}:${tool.name}`,
      mcpName: gatewayToolName(view.integration, tool.name),
      description: typeof tool.description === 'string' ? tool.description : null,
      readOnly: typeof tool.annotations?.readOnlyHint === 'boolean' ? tool.annotations.readOnlyHint : null,
      destructive: typeof tool.annotations?.destructiveHint === 'boolean' ? tool.annotations.destructiveHint : null,
    })),
  };
}

/**
 * An org's remote MCP servers (gateway mode, docs/gateway-mode.md): registered by the
 * operator for one integration each; their tools become capabilities without a deploy.
 */
@Controller('v1/admin/organizations/:orgId/mcp-servers')
export class McpServersController {
  constructor(
    private readonly rpcClient: RpcClient,
    private readonly catalog: McpToolCatalog,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  @Route({
    method: 'PUT',
    path: ':integration',
    summary: 'Register a remote MCP server',
    description:
      "Registers (or changes) the org's MCP server for an integration. Agents reach its tools at /mcp as " +
      "`<integration>.<tool>`, called with the person's own connection to the integration (`auth`: `connection`, or " +
      "`mcp_oauth` for one made with the server's own authorization server, discovered here; or `none`); policy rules name them " +
      '`<integration>:<tool>`. The tool list is read at once when the server allows it without a credential, else at ' +
      'the first use by a connected person, and again every MCP_TOOLS_TTL_MS.',
    tags: ['mcp-admin'],
    audit: { action: 'admin_change' },
    auth: 'operator',
    params: mcpServerParams,
    body: putMcpServerBody,
    success: { status: 200, schema: mcpServerSchema, description: 'Registered.' },
    errors: [
      ...adminErrors,
      'upstream_auth_discovery_failed',
      'upstream_auth_issuer_mismatch',
      'upstream_auth_client_unavailable',
    ],
  })
  async put(
    @Param() p: z.infer<typeof mcpServerParams>,
    @Body() body: z.infer<typeof putMcpServerBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: p.orgId, integration: p.integration, resource: `mcp_server:${p.integration}` });
    const url = checkUpstreamUrl(body.url, {
      allowHttp: this.env.MCP_ALLOW_INSECURE_UPSTREAMS,
      allowPrivateNetworks: this.env.MCP_ALLOW_PRIVATE_UPSTREAMS,
    });
    const previous = (await this.rpcClient.request(rpc.policy.listMcpServers, { orgId: p.orgId })).servers.find(
      (s) => s.integration === p.integration,
    );
    // Policy first: a token the broker holds for another URL is never sent to this one (the
    // gateway checks a token's resource against the server's URL), so the gap is safe.
    const reply = await this.rpcClient.request(rpc.policy.putMcpServer, {
      orgId: p.orgId,
      integration: p.integration,
      url: url.href,
      resourceArguments: body.resourceArguments ?? {},
      auth: body.auth,
    });
    // The server's own OAuth is discovered (and the gateway identified there): a server that
    // cannot be connected to is refused with the reason, and the policy put back as it was.
    if (body.auth === 'mcp_oauth')
      await this.rpcClient
        .request(rpc.broker.putMcpOAuthServer, {
          orgId: p.orgId,
          integration: p.integration,
          url: url.href,
          clientId: body.oauthClient?.clientId ?? '',
          clientSecret: body.oauthClient?.clientSecret ?? '',
        })
        .catch(async (error: unknown) => {
          // The registration's own error is the answer, even if putting the policy back failed too.
          await this.restore(p.orgId, p.integration, previous).catch(() => undefined);
          throw error;
        });
    // Another auth now: the server's own OAuth registration is dropped (its connections then need the person again).
    if (body.auth !== 'mcp_oauth')
      await this.rpcClient.request(rpc.broker.deleteMcpOAuthServer, { orgId: p.orgId, integration: p.integration });
    if (!reply.server) throw new Error('policy answered no server');
    // Best effort: a server that lists its tools without a credential is known at once.
    await this.catalog.anonymous(p.orgId, mcpServerView(reply.server));
    return this.current(p.orgId, p.integration);
  }

  @Route({
    method: 'GET',
    path: '',
    summary: "The org's remote MCP servers",
    tags: ['mcp-admin'],
    auth: 'operator',
    params: mcpServersParams,
    success: { status: 200, schema: mcpServerListSchema, description: 'Each server with its tools as last read.' },
    errors: [...adminErrors],
  })
  async list(@Param() p: z.infer<typeof mcpServersParams>) {
    const reply = await this.rpcClient.request(rpc.policy.listMcpServers, { orgId: p.orgId });
    const oauth = await this.oauthServers(p.orgId);
    return { servers: reply.servers.map((s) => present(s, oauth.get(s.integration))) };
  }

  @Route({
    method: 'DELETE',
    path: ':integration',
    summary: 'Remove a remote MCP server',
    description: 'Its tools stop being capabilities: the next call of any of them is refused.',
    tags: ['mcp-admin'],
    audit: { action: 'admin_change' },
    auth: 'operator',
    params: mcpServerParams,
    success: { status: 200, schema: mcpServerSchema, description: 'Removed (as it was).' },
    errors: [...adminErrors, 'not_found'],
  })
  async remove(@Param() p: z.infer<typeof mcpServerParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: p.orgId, integration: p.integration, resource: `mcp_server:${p.integration}` });
    const reply = await this.rpcClient.request(rpc.policy.deleteMcpServer, {
      orgId: p.orgId,
      integration: p.integration,
    });
    if (!reply.server) throw new Error('policy answered no server');
    await this.rpcClient.request(rpc.broker.deleteMcpOAuthServer, { orgId: p.orgId, integration: p.integration });
    return present(reply.server);
  }

  /** The server as policy had it before a registration that failed (none: removed again). */
  private async restore(orgId: string, integration: string, previous: McpServer | undefined): Promise<void> {
    if (previous)
      await this.rpcClient.request(rpc.policy.putMcpServer, {
        orgId,
        integration,
        url: previous.url,
        resourceArguments: previous.resourceArguments,
        auth: previous.auth,
      });
    else await this.rpcClient.request(rpc.policy.deleteMcpServer, { orgId, integration });
  }

  /** The org's servers with their own OAuth, by integration (what discovery found). */
  private async oauthServers(orgId: string): Promise<Map<string, McpOAuthServer>> {
    const reply = await this.rpcClient.request(rpc.broker.listMcpOAuthServers, { orgId });
    return new Map(reply.servers.map((s) => [s.integration, s]));
  }

  private async current(orgId: string, integration: string) {
    const reply = await this.rpcClient.request(rpc.policy.listMcpServers, { orgId });
    const server = reply.servers.find((s) => s.integration === integration);
    if (!server) throw new Error('the registered server is gone');
    return present(server, (await this.oauthServers(orgId)).get(integration));
  }
}
