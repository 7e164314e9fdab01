import { Clock } from '@context-gateway/clock';
import { LOGGER, Metrics, SERVICE_ENV } from '@context-gateway/service-kit';
import { Module } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { GrantsModule } from '../grants/grants.module.js';
import { McpOAuthClient } from '../mcp-oauth/mcp-oauth.client.js';
import { McpOAuthHandler } from '../mcp-oauth/mcp-oauth.handler.js';
import { guardedFetch } from '../mcp-oauth/mcp-oauth-discovery.js';
import { McpOAuthServersRepository } from '../mcp-oauth/mcp-oauth-servers.repository.js';
import { IntegrationResolver, McpOAuthServersService } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { moveLegacyKeys } from '../vault/legacy-keys.js';
import { AccessTokensService } from './access-tokens.service.js';
import { ConnectionDeletionsMetrics } from './connection-deletions.metrics.js';
import { ConnectionDeletionsRelay } from './connection-deletions.relay.js';
import { ConnectionDeletionsRepository } from './connection-deletions.repository.js';
import { ConnectionsHandler } from './connections.handler.js';
import { ConnectionsRepository } from './connections.repository.js';
import { ConnectionsService } from './connections.service.js';

/**
 * Connections: reading one as an app, token access with refresh for the data plane, deletion.
 * The credential vault lives here because only this context seals or opens credentials; the
 * connect flow stores a credential through ConnectionsService, the one export.
 */
@Module({
  imports: [GrantsModule],
  controllers: [ConnectionsHandler, McpOAuthHandler],
  providers: [
    McpOAuthServersRepository,
    McpOAuthServersService,
    IntegrationResolver,
    {
      provide: McpOAuthClient,
      inject: [SERVICE_ENV, CredentialVault, Clock],
      // Every request to an MCP server or its authorization server goes through the outbound guard.
      useFactory: (env: Env, vault: CredentialVault, clock: Clock) => {
        const policy = {
          allowHttp: env.MCP_ALLOW_INSECURE_UPSTREAMS,
          allowPrivateNetworks: env.MCP_ALLOW_PRIVATE_UPSTREAMS,
        };
        return new McpOAuthClient(
          {
            gatewayUrl: env.GATEWAY_PUBLIC_URL,
            policy,
            timeoutMs: env.SOURCE_HTTP_TIMEOUT_MS,
          },
          guardedFetch(policy, env.SOURCE_HTTP_TIMEOUT_MS).fetch,
          vault,
          clock,
        );
      },
    },
    ConnectionsRepository,
    ConnectionsService,
    ConnectionDeletionsRepository,
    ConnectionDeletionsRelay,
    ConnectionDeletionsMetrics,
    AccessTokensService,
    {
      provide: CredentialVault,
      inject: [SERVICE_ENV, ConnectionsRepository, Metrics, LOGGER],
      // A fresh KEK is refused while credentials sealed under the missing one are stored; keys
      // an older version kept in the database are moved to the key store before serving.
      useFactory: async (env: Env, connections: ConnectionsRepository, metrics: Metrics, logger: Logger) => {
        const vault = await CredentialVault.open(env, () => connections.countSealedCredentials(), metrics.keyStore);
        await moveLegacyKeys(vault, connections, logger);
        // Which key store holds this service's KEK (never the key or the PIN).
        logger.info({ keyProvider: env.KEY_PROVIDER }, 'credential vault ready');
        return vault;
      },
    },
  ],
  // The MCP servers with their own OAuth live here because their client secrets are sealed by
  // this context's vault and token access refreshes their connections; the connect flow resolves them.
  exports: [ConnectionsService, CredentialVault, IntegrationResolver, McpOAuthClient],
})
export class ConnectionsModule {}
