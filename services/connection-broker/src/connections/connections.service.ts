import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { BROKER_DB, type BrokerDb } from '../database/database.module.js';
import type { Env } from '../env.js';
import { GrantEventsRelay } from '../grants/grant-events.relay.js';
import { GrantFollowers } from '../grants/grant-followers.service.js';
import { GrantsRepository } from '../grants/grants.repository.js';
import { IntegrationCatalog } from '../integrations/integration-catalog.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { type Credential, CredentialVault } from '../vault/credential-vault.js';
import { type Connection, ConnectionsRepository } from './connections.repository.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface AccessToken {
  credential: Credential;
  connection: Connection;
}

/**
 * Connections: what an app may see of one, the data plane's token access (refresh is
 * single-flight per connection: one in-process promise per connection AND a row lock, so
 * two replicas never spend the same refresh token), and deletion with provider-side
 * revocation and crypto-shredding.
 */
@Injectable()
export class ConnectionsService {
  readonly #refreshing = new Map<string, Promise<AccessToken>>();

  constructor(
    @Inject(BROKER_DB) private readonly db: BrokerDb,
    private readonly connections: ConnectionsRepository,
    private readonly grants: GrantsRepository,
    private readonly followers: GrantFollowers,
    private readonly relay: GrantEventsRelay,
    private readonly catalog: IntegrationCatalog,
    private readonly oauth: SourceOAuthClient,
    private readonly vault: CredentialVault,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The connection as the asking app sees it: only with an active grant of that app in that org, else not found. */
  async getForApp(
    orgId: string,
    applicationId: string,
    connectionId: string,
  ): Promise<{ connection: Connection; scopes: string[] }> {
    if (!UUID.test(connectionId)) throw new AppError('connection_not_found');
    const grant = await this.grants.findActive(applicationId, connectionId);
    if (!grant || grant.orgId !== orgId) throw new AppError('connection_not_found');
    const connection = await this.connections.findById(connectionId);
    if (!connection || connection.deletedAt) throw new AppError('connection_not_found');
    return { connection, scopes: grant.scopes };
  }

  /** The user's own connections and every grant on them: what a person sees and revokes from. */
  listForUser(userId: string) {
    return this.connections.listForUser(userId);
  }

  /** A usable credential, refreshed first when expired or about to (or when the caller says the source answered 401). */
  async accessToken(connectionId: string, forceRefresh: boolean): Promise<AccessToken> {
    const connection = await this.usable(await this.connections.findById(connectionId));
    if (connection.authType === 'file_export') {
      throw new AppError(
        'no_source_api',
        `${this.catalog.get(connection.integration).displayName} has no API: its data is imported from the export the person uploads`,
      );
    }
    const credential = await this.vault.open(owner(connection), sealed(connection));
    if (connection.authType === 'api_key' || (!forceRefresh && !this.expiringSoon(connection.accessExpiresAt))) {
      return { credential, connection };
    }
    let flight = this.#refreshing.get(connectionId);
    if (!flight) {
      flight = this.refreshLocked(connectionId, connection.credentialVersion).finally(() =>
        this.#refreshing.delete(connectionId),
      );
      this.#refreshing.set(connectionId, flight);
    }
    return flight;
  }

  private async refreshLocked(connectionId: string, seenVersion: number): Promise<AccessToken> {
    try {
      return await this.db.$transaction(
        async (tx) => {
          const row = await this.usable(await this.connections.lockForUpdate(tx, connectionId));
          const current = await this.vault.open(owner(row), sealed(row));
          // Another replica refreshed while we waited for the lock: use its token, keep the refresh token it stored.
          if (row.credentialVersion !== seenVersion && !this.expiringSoon(row.accessExpiresAt))
            return { credential: current, connection: row };
          const next = await this.oauth.refresh(this.catalog.get(row.integration), current);
          // The rotated refresh token is stored in the same transaction that consumed the old one.
          const ciphertext = await this.vault.reseal(owner(row), row.wrappedDataKey!, next);
          const stored = await this.connections.storeRefreshed(
            tx,
            row.id,
            ciphertext,
            next.expiresAt ? new Date(next.expiresAt) : null,
          );
          this.logger.info({ connectionId, integration: row.integration }, 'access token refreshed');
          return { credential: next, connection: stored };
        },
        { timeout: this.env.SOURCE_HTTP_TIMEOUT_MS + 5_000, maxWait: this.env.SOURCE_HTTP_TIMEOUT_MS + 5_000 },
      );
    } catch (error) {
      if (error instanceof AppError && error.code === 'connection_needs_reauth') {
        await this.connections.markNeedsReauth(connectionId);
        this.logger.warn({ connectionId }, 'refresh refused by the source: connection needs reauthorization');
      }
      throw error;
    }
  }

  /**
   * Deletes a user's connection: revoked at the source (best effort; the answer says whether
   * it worked), every grant revoked, the data key and ciphertext destroyed, the Personal
   * Server told to shred the records.
   */
  async remove(connectionId: string, userId: string): Promise<boolean> {
    const connection = await this.connections.findById(connectionId);
    if (!connection || connection.userId !== userId || connection.deletedAt || !connection.wrappedDataKey)
      throw new AppError('connection_not_found');
    const integration = this.catalog.get(connection.integration);
    let revokedAtSource = false;
    if (integration.authType === 'oauth2') {
      const credential = await this.vault.open(owner(connection), sealed(connection)).catch(() => undefined);
      if (credential) revokedAtSource = await this.oauth.revoke(integration, credential);
    }
    const revokedGrants = await this.db.$transaction(async (tx) => {
      const active = await this.grants.activeOnConnection(tx, connectionId);
      const revoked = [];
      for (const grant of active) {
        const done = await this.grants.revoke(tx, { applicationId: grant.applicationId, connectionId }, new Date());
        if (done) revoked.push({ grant: done, eventId: await this.relay.record(tx, done, connection.integration) });
      }
      await this.connections.shred(tx, connectionId, new Date());
      return revoked;
    });
    this.vault.shred(owner(connection), connection.wrappedDataKey);
    await this.followers.revoked(revokedGrants.map((r) => r.eventId));
    await this.followers.connectionDeleted(connectionId, userId);
    this.logger.info(
      { connectionId, integration: connection.integration, revokedAtSource },
      'connection deleted and its key destroyed',
    );
    return revokedAtSource;
  }

  private async usable(connection: Connection | null): Promise<Connection> {
    if (!connection || connection.deletedAt || !connection.wrappedDataKey || !connection.credentialCiphertext)
      throw new AppError('connection_not_found');
    if (connection.status === 'needs_reauth') throw new AppError('connection_needs_reauth');
    return connection;
  }

  private expiringSoon(expiresAt: Date | null): boolean {
    return expiresAt !== null && expiresAt.getTime() - this.env.TOKEN_REFRESH_SKEW_SECONDS * 1000 <= Date.now();
  }
}

export function owner(connection: Pick<Connection, 'orgId' | 'userId' | 'id'>) {
  return { orgId: connection.orgId, userId: connection.userId, connectionId: connection.id };
}

function sealed(connection: Connection) {
  return { wrappedDataKey: connection.wrappedDataKey!, ciphertext: connection.credentialCiphertext! };
}
