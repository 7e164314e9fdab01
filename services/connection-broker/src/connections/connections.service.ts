import { randomUUID } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Tx } from '../database/database.module.js';
import { GrantsService } from '../grants/grants.service.js';
import type { Integration } from '../integrations/integration-catalog.js';
import { IntegrationResolver } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { type Credential, CredentialVault } from '../vault/credential-vault.js';
import { ConnectionDeletionsRelay } from './connection-deletions.relay.js';
import { ConnectionDeletionsRepository } from './connection-deletions.repository.js';
import { type Connection, ConnectionsRepository } from './connections.repository.js';
import { assertSameOrganization, owner } from './usable-connection.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a deletion answers: `deleting` until the Personal Server confirmed the shredding. */
export interface RemovedConnection {
  revokedAtSource: boolean;
  status: 'deleting' | 'deleted';
}

/** A credential the connect flow stored: the connection, and the row it replaced (a reconnect) if any. */
export interface SavedConnection {
  connection: Connection;
  replaced: Connection | null;
}

/**
 * Connections: what an app may see of one, what a person lists, the credential the connect
 * flow stores (in the flow's transaction), and deletion with provider-side revocation and
 * crypto-shredding. The data plane's token access is AccessTokensService.
 */
@Injectable()
export class ConnectionsService {
  constructor(
    private readonly connections: ConnectionsRepository,
    private readonly grants: GrantsService,
    private readonly integrations: IntegrationResolver,
    private readonly oauth: SourceOAuthClient,
    private readonly vault: CredentialVault,
    private readonly deletions: ConnectionDeletionsRepository,
    private readonly relay: ConnectionDeletionsRelay,
    private readonly clock: Clock,
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

  /**
   * The person's connection to an integration that this application may use: in this org, not
   * deleted, with the application's active grant. Null when there is none (the connect flow
   * makes one); a connection the source refused comes back with its status (reconnect).
   */
  async findUsableForApp(request: {
    orgId: string;
    applicationId: string;
    userId: string;
    integration: string;
  }): Promise<{ connection: Connection; scopes: string[] } | null> {
    const connection = await this.connections.findByUser(request.userId, request.integration);
    if (!connection || connection.deletedAt || connection.orgId !== request.orgId) return null;
    const grant = await this.grants.findActive(request.applicationId, connection.id);
    if (!grant || grant.orgId !== request.orgId) return null;
    return { connection, scopes: grant.scopes };
  }

  /** The user's own connections (deleting ones too) and every grant on them: what a person sees and revokes from. */
  listForUser(userId: string) {
    return this.connections.listForUser(userId);
  }

  /** The user's own live connection by id; null for anyone else's, a deleted one, or none. */
  async findOwned(userId: string, connectionId: string): Promise<Connection | null> {
    const connection = await this.connections.findById(connectionId);
    return connection && connection.userId === userId && !connection.deletedAt ? connection : null;
  }

  /** The user's connection to an integration (deleted ones too: the row stays, keyed by user and integration). */
  findByUser(userId: string, integration: string): Promise<Connection | null> {
    return this.connections.findByUser(userId, integration);
  }

  /**
   * In the connect flow's transaction: the credential sealed under a fresh data key, on a new
   * connection or on the user's existing row (a reconnect). The organization is checked again
   * here, against a race with another organization's connect flow.
   */
  async save(
    tx: Tx,
    input: {
      orgId: string;
      userId: string;
      integration: Integration;
      credential: Credential;
      sourceScopes: string[];
    },
  ): Promise<SavedConnection> {
    const existing = await this.connections.findByUser(input.userId, input.integration.key, tx);
    assertSameOrganization(existing, input.orgId);
    // A reconnect must not race the shredding still owed for the same connection id.
    if (existing?.deletedAt && (await this.deletions.find(existing.id, tx))?.confirmedAt === null)
      throw new AppError('conflict', 'This connection is still being deleted; connect it again in a moment');
    const accessExpiresAt = input.credential.expiresAt ? new Date(input.credential.expiresAt) : null;
    if (existing) {
      const sealed = await this.vault.sealNew(owner(existing), input.credential);
      const connection = await this.connections.replaceCredential(tx, existing.id, {
        sourceScopes: input.sourceScopes,
        dataKeyId: sealed.dataKeyId,
        credentialCiphertext: sealed.ciphertext,
        accessExpiresAt,
      });
      return { connection, replaced: existing };
    }
    const id = randomUUID();
    const sealed = await this.vault.sealNew(
      { orgId: input.orgId, userId: input.userId, connectionId: id },
      input.credential,
    );
    const connection = await this.connections.create(tx, {
      id,
      orgId: input.orgId,
      userId: input.userId,
      integration: input.integration.key,
      authType: input.integration.authType,
      sourceScopes: input.sourceScopes,
      dataKeyId: sealed.dataKeyId,
      credentialCiphertext: sealed.ciphertext,
      accessExpiresAt,
    });
    return { connection, replaced: null };
  }

  /** After `save` committed a reconnect: the replaced data key is destroyed (its file and the vault's cached copy). */
  async forgetReplacedKey(saved: SavedConnection): Promise<void> {
    if (saved.replaced?.dataKeyId) await this.vault.destroy(owner(saved.replaced), saved.replaced.dataKeyId);
  }

  /**
   * Deletes a user's connection, in this order: the token revoked at the source (best effort;
   * the answer says whether it worked, and it needs the credential, so it comes first); every
   * grant revoked at the owning shard (the apps' next query fails there); then one commit here
   * that revokes the grants, destroys the data key and ciphertext and queues the shredding of
   * the records in the deletion outbox; then one delivery attempt. `deleted` when the shard
   * confirmed it before we answer, else `deleting`: the relay retries until it does.
   */
  async remove(connectionId: string, userId: string): Promise<RemovedConnection> {
    const connection = await this.connections.findById(connectionId);
    if (!connection || connection.userId !== userId || connection.deletedAt || !connection.dataKeyId)
      throw new AppError('connection_not_found');
    const dataKeyId = connection.dataKeyId;
    // An org's MCP server may be gone already (nothing to revoke at then); its own OAuth has
    // no revocation wired (the token dies with its short lifetime, the refresh token unused).
    const integration = await this.integrations
      .resolve(connection.orgId, connection.integration)
      .catch(() => undefined);
    let revokedAtSource = false;
    if (integration?.authType === 'oauth2' && !integration.mcp && connection.credentialCiphertext) {
      const credential = await this.vault
        .open(owner(connection), { dataKeyId, ciphertext: connection.credentialCiphertext })
        .catch(() => undefined);
      if (credential) revokedAtSource = await this.oauth.revoke(integration, credential);
    }
    const revokedAtShard = await this.grants.revokeAllAtShard(connectionId);
    // The key file goes before the row changes: a crash in between leaves a row whose
    // credential no longer opens (deleting again finishes the job), never a key that outlives
    // its deletion and still opens the ciphertext in an earlier backup.
    await this.vault.destroy(owner(connection), dataKeyId);
    const eventIds = await this.connections.transaction(async (tx) => {
      const revoked = await this.grants.revokeAllOnConnection(tx, connectionId, connection.integration);
      const now = this.clock.date();
      await this.connections.shred(tx, connectionId, now);
      await this.deletions.queue(tx, { connectionId, userId, now });
      return revoked;
    });
    const shredded = await this.relay.deliverNow(connectionId);
    await this.grants.revoked(eventIds);
    this.logger.info(
      { connectionId, integration: connection.integration, revokedAtSource, revokedAtShard, shredded },
      shredded ? 'connection deleted and its keys destroyed' : 'connection deleting; its records are shredded on retry',
    );
    return { revokedAtSource, status: shredded ? 'deleted' : 'deleting' };
  }
}
