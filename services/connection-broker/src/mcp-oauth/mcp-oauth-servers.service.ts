import { AppError } from '@context-gateway/errors';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { type Integration, IntegrationCatalog } from '../integrations/integration-catalog.js';
import { McpOAuthClient, type RegisterInput } from './mcp-oauth.client.js';
import { type McpOAuthServer, McpOAuthServersRepository } from './mcp-oauth-servers.repository.js';

/** The consent page's words for `<integration>:tools` of an MCP server with its own OAuth. */
function toolsDescription(server: McpOAuthServer): string {
  const name = server.resourceName ?? server.integration;
  return `Use the tools of ${name} (${new URL(server.resource).host}), the MCP server your organization connects, on your behalf, each call checked against your organization's rules and your own.`;
}

/**
 * An org's remote MCP servers whose people connect through the server's own authorization
 * server. Such a server is an integration of its org alone: resolved per org, ahead of the
 * catalog (whose keys it may not take: a catalog integration connects through the catalog).
 */
@Injectable()
export class McpOAuthServersService {
  constructor(
    private readonly repo: McpOAuthServersRepository,
    private readonly client: McpOAuthClient,
    private readonly catalog: IntegrationCatalog,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async put(input: RegisterInput): Promise<McpOAuthServer> {
    if (this.catalog.keys().includes(input.integration))
      throw new AppError(
        'validation_failed',
        `${input.integration} is a catalog integration: its connections use the catalog's OAuth (auth "connection")`,
        [{ path: 'auth', message: 'mcp_oauth is for integrations outside the catalog' }],
      );
    const row = await this.client.register(input, await this.repo.find(input.orgId, input.integration));
    const stored = await this.repo.upsert(row);
    this.logger.info(
      { orgId: input.orgId, integration: input.integration, issuer: stored.issuer, clientSource: stored.clientSource },
      'MCP server with its own OAuth registered',
    );
    return stored;
  }

  /** The redirect URI the registration's authorization server must know (the operator registers a pre-registered client with it). */
  redirectUri(server: McpOAuthServer): string {
    return this.client.redirectUri(server);
  }

  list(orgId: string): Promise<McpOAuthServer[]> {
    return this.repo.list(orgId);
  }

  delete(orgId: string, integration: string): Promise<boolean> {
    return this.repo.delete(orgId, integration);
  }

  /** The integration an org's MCP server with its own OAuth is, for the connect flow and token access; undefined if none. */
  async integration(orgId: string, key: string): Promise<Integration | undefined> {
    const server = await this.repo.find(orgId, key);
    if (!server) return undefined;
    const metadata = server.metadata as { authorization_endpoint: string; token_endpoint: string };
    return {
      key: server.integration,
      displayName: server.resourceName ?? server.integration,
      authType: 'oauth2',
      apiBaseUrl: server.resource,
      oauth: {
        issuer: server.issuer,
        authorizationUrl: metadata.authorization_endpoint,
        tokenUrl: metadata.token_endpoint,
        pkceRequired: true,
        scopeSeparator: ' ',
        clientId: server.clientId,
      },
      scopes: { [`${server.integration}:tools`]: { source: server.scopes, description: toolsDescription(server) } },
      mcp: server,
    };
  }
}

/**
 * Which integration a key names in an org: the org's MCP server with its own OAuth, else the
 * catalog's (else `integration_not_allowed`).
 */
@Injectable()
export class IntegrationResolver {
  constructor(
    private readonly servers: McpOAuthServersService,
    private readonly catalog: IntegrationCatalog,
  ) {}

  async resolve(orgId: string, key: string): Promise<Integration> {
    return (await this.servers.integration(orgId, key)) ?? this.catalog.get(key);
  }
}
