import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { GrantsService } from '../grants/grants.service.js';
import { IntegrationCatalog } from '../integrations/integration-catalog.js';
import { McpOAuthClient } from '../mcp-oauth/mcp-oauth.client.js';
import { IntegrationResolver } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { type Credential, CredentialVault } from '../vault/credential-vault.js';
import { type Connection, ConnectionsRepository } from './connections.repository.js';
import { owner, sealed, usable } from './usable-connection.js';

export interface AccessToken {
  credential: Credential;
  connection: Connection;
}

/**
 * The data plane's token access: a usable credential, refreshed first when expired or about
 * to be. Refresh is single-flight per connection: one in-process promise per connection AND
 * a row lock, so two replicas never spend the same refresh token.
 */
@Injectable()
export class AccessTokensService {
  readonly #refreshing = new Map<string, Promise<AccessToken>>();

  constructor(
    private readonly connections: ConnectionsRepository,
    private readonly catalog: IntegrationCatalog,
    private readonly oauth: SourceOAuthClient,
    private readonly mcpOAuth: McpOAuthClient,
    private readonly integrations: IntegrationResolver,
    private readonly vault: CredentialVault,
    private readonly clock: Clock,
    private readonly grants: GrantsService,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The connection needs its person again: marked, and every app holding a grant told in the same commit. */
  private async markNeedsReauth(connectionId: string): Promise<void> {
    const connection = await this.connections.findById(connectionId);
    if (!connection) return;
    await this.connections.transaction(async (tx) => {
      if (await this.connections.markNeedsReauth(tx, connectionId))
        await this.grants.tellNeedsReauth(tx, connectionId, connection.integration);
    });
  }

  /**
   * A usable credential, refreshed first when expired or about to, or when the caller says the
   * source refused its token (`forceRefresh`, with the `refusedVersion` of that token): then
   * only while that version is still the stored one. "Refuse this token" is a fact about one
   * credential, not a request to refresh whatever is stored: a caller whose 401 arrives after
   * another replica's refresh gets the newer token, and the refresh token is not spent again.
   * `refusedVersion` 0 (an older caller): the version stored when this request arrives.
   */
  async accessToken(connectionId: string, forceRefresh: boolean, refusedVersion = 0): Promise<AccessToken> {
    const connection = usable(await this.connections.findById(connectionId));
    if (connection.authType === 'file_export') {
      throw new AppError(
        'no_source_api',
        `${this.catalog.get(connection.integration).displayName} has no API: its data is imported from the export the person uploads`,
      );
    }
    const credential = await this.vault.open(owner(connection), sealed(connection));
    if (credential.resource) await this.assertSameResource(connection, credential.resource);
    const expiring = this.expiringSoon(connection.accessExpiresAt);
    if (connection.authType === 'api_key') {
      // An API key cannot be refreshed: the source refusing the stored key means the person
      // revoked or rotated it there, and only they can paste a new one.
      const refusedStored = refusedVersion === 0 || refusedVersion === connection.credentialVersion;
      if (forceRefresh && refusedStored) {
        await this.markNeedsReauth(connectionId);
        this.logger.warn({ connectionId }, 'API key refused by the source: connection needs reauthorization');
        throw new AppError(
          'connection_needs_reauth',
          `${this.catalog.get(connection.integration).displayName} refused the API key: the person must enter a new one`,
        );
      }
      return { credential, connection };
    }
    if (!forceRefresh && !expiring) {
      return { credential, connection };
    }
    const failedVersion = forceRefresh && refusedVersion > 0 ? refusedVersion : connection.credentialVersion;
    // The refused token was already replaced: the replacement is the answer.
    if (failedVersion !== connection.credentialVersion && !expiring) return { credential, connection };
    let flight = this.#refreshing.get(connectionId);
    if (!flight) {
      flight = this.refreshLocked(connectionId, failedVersion).finally(() => this.#refreshing.delete(connectionId));
      this.#refreshing.set(connectionId, flight);
    }
    return flight;
  }

  private async refreshLocked(connectionId: string, seenVersion: number): Promise<AccessToken> {
    // The transaction holds the row lock across the source's round trip: let it last that long.
    const waitMs = this.env.SOURCE_HTTP_TIMEOUT_MS + 5_000;
    try {
      return await this.connections.transaction(
        async (tx) => {
          const row = usable(await this.connections.lockForUpdate(tx, connectionId));
          const current = await this.vault.open(owner(row), sealed(row));
          // Another replica refreshed while we waited for the lock: use its token, keep the refresh token it stored.
          if (row.credentialVersion !== seenVersion && !this.expiringSoon(row.accessExpiresAt))
            return { credential: current, connection: row };
          const integration = await this.integrations.resolve(row.orgId, row.integration);
          // An MCP server's own authorization server refreshes with the `resource` (RFC 8707).
          const next = integration.mcp
            ? await this.mcpOAuth.refresh(integration.mcp, current)
            : await this.oauth.refresh(integration, current);
          // The rotated refresh token is stored in the same transaction that consumed the old one.
          const ciphertext = await this.vault.reseal(owner(row), row.dataKeyId, next);
          const stored = await this.connections.storeRefreshed(
            tx,
            row.id,
            ciphertext,
            next.expiresAt ? new Date(next.expiresAt) : null,
          );
          this.logger.info({ connectionId, integration: row.integration }, 'access token refreshed');
          return { credential: next, connection: stored };
        },
        { timeout: waitMs, maxWait: waitMs },
      );
    } catch (error) {
      if (error instanceof AppError && error.code === 'connection_needs_reauth') {
        await this.markNeedsReauth(connectionId);
        this.logger.warn({ connectionId }, 'refresh refused by the source: connection needs reauthorization');
      }
      throw error;
    }
  }

  /**
   * A token from an MCP server's own authorization server is for that server's resource: once
   * the org removed the server or registered it at another resource, the person connects again.
   */
  private async assertSameResource(connection: Connection, resource: string): Promise<void> {
    // Only "no such integration" means the server is gone; any other failure (a database blip) is no verdict.
    const integration = await this.integrations
      .resolve(connection.orgId, connection.integration)
      .catch((error: unknown) => {
        if (error instanceof AppError && error.code === 'integration_not_allowed') return undefined;
        throw error;
      });
    if (integration?.mcp?.resource === resource) return;
    await this.markNeedsReauth(connection.id);
    this.logger.warn(
      { connectionId: connection.id },
      'token for another MCP resource: connection needs reauthorization',
    );
    throw new AppError('connection_needs_reauth', 'The MCP server changed: the person must connect again');
  }

  /** Expired, or expiring within the skew (by the injected clock): a sync must not start with a dying token. */
  private expiringSoon(expiresAt: Date | null): boolean {
    return expiresAt !== null && expiresAt.getTime() - this.env.TOKEN_REFRESH_SKEW_SECONDS * 1000 <= this.clock.now();
  }
}
