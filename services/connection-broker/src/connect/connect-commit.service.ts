import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, SyncReason } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Connection } from '../connections/connections.repository.js';
import { ConnectionsService, type SavedConnection } from '../connections/connections.service.js';
import { GrantsService } from '../grants/grants.service.js';
import type { Integration } from '../integrations/integration-catalog.js';
import type { Credential } from '../vault/credential-vault.js';
import { type ConnectSession, ConnectSessionsRepository } from './connect-sessions.repository.js';
import { consentProof } from './consent-proof.js';
import { appCallback, type FlowResult, refusal } from './flow-result.js';

/** What the flow connects with: an existing connection reused as is, or a credential to store. */
export type ConnectSource = { reuse: Connection } | { credential: Credential; sourceScopes: string[] };

/**
 * The connect flow's end, shared by every auth type. One transaction: the session consumed,
 * the connection (new, reconnected or reused), the app's grant and its event. Then what
 * follows, in this order: the replaced key forgotten, the Personal Server told of the grant
 * with the person's signed consent (it is provisioned there first), the first sync queued.
 */
@Injectable()
export class ConnectCommitService {
  constructor(
    private readonly sessions: ConnectSessionsRepository,
    private readonly connections: ConnectionsService,
    private readonly grants: GrantsService,
    private readonly publisher: JetStreamPublisher,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async commit(
    session: ConnectSession,
    from: 'pending' | 'authorizing',
    userId: string,
    integration: Integration,
    source: ConnectSource,
    /** The person's passkey assertion over this session's consent (consent-proof.ts). */
    consentAssertion: string,
  ): Promise<FlowResult> {
    const { saved, change } = await this.sessions.transaction(async (tx) => {
      if (!(await this.sessions.finish(session.id, { from, to: 'completed', now: this.clock.date(), userId }, tx)))
        throw new AppError('connect_session_invalid');
      let connection: Connection;
      let saved: SavedConnection | null = null;
      if ('reuse' in source) {
        connection = source.reuse;
      } else {
        saved = await this.connections.save(tx, {
          orgId: session.orgId,
          userId,
          integration,
          credential: source.credential,
          sourceScopes: source.sourceScopes,
        });
        connection = saved.connection;
      }
      await this.sessions.setConnection(tx, session.id, connection.id);
      const change = await this.grants.grant(
        tx,
        {
          orgId: session.orgId,
          applicationId: session.applicationId,
          userId,
          connectionId: connection.id,
          scopes: session.scopes,
        },
        integration.key,
      );
      return { saved, change };
    });
    const connectionId = change.grant.connectionId;
    // Best effort after the commit: a leftover file only holds the replaced credential's key.
    if (saved)
      await this.connections
        .forgetReplacedKey(saved)
        .catch((error: unknown) => this.logger.warn({ err: error }, 'the replaced data key was not destroyed'));
    this.logger.info(
      { connectSession: session.id, connectionId, grantId: change.grant.id, reused: !saved },
      'connection and grant recorded',
    );
    await this.grants.granted(change, integration.key, consentProof(session, userId, consentAssertion));
    // An MCP server's own OAuth gives tools, no data to sync.
    if (saved && !integration.mcp) await this.queueInitialSync(connectionId);
    return {
      redirectUrl: appCallback(session, { connectionId }),
      sessionId: session.id,
      connectionId,
      grantId: change.grant.id,
      orgId: session.orgId,
      applicationId: session.applicationId,
    };
  }

  /**
   * A person-started reconnect's end (ConnectService.startReconnect): the connection's
   * credential renewed and the session consumed in one transaction; no grant changes. It
   * must still be the person's live connection (not deleted meanwhile), and the source must
   * grant at least the scopes the connection carried (other applications' grants rely on
   * them); otherwise nothing changes and the portal hears `conflict` or `source_error`.
   */
  async reconnect(
    session: ConnectSession,
    userId: string,
    integration: Integration,
    source: { credential: Credential; sourceScopes: string[] | undefined },
  ): Promise<FlowResult> {
    const refuse = async (error: 'conflict' | 'source_error', why: string): Promise<FlowResult> => {
      await this.sessions.finish(session.id, { from: 'authorizing', to: 'failed', now: this.clock.date() });
      this.logger.warn({ connectSession: session.id, why }, 'reconnect refused');
      return refusal(session, error);
    };
    const current = await this.connections.findOwned(userId, session.reconnectConnectionId ?? '');
    if (!current) return refuse('conflict', 'the connection is gone');
    const sourceScopes = source.sourceScopes ?? current.sourceScopes;
    if (!current.sourceScopes.every((s) => sourceScopes.includes(s)))
      return refuse('source_error', 'the source granted fewer scopes than the connection carries');
    let saved: SavedConnection;
    try {
      saved = await this.sessions.transaction(async (tx) => {
        if (
          !(await this.sessions.finish(
            session.id,
            { from: 'authorizing', to: 'completed', now: this.clock.date(), userId },
            tx,
          ))
        )
          throw new AppError('connect_session_invalid');
        const saved = await this.connections.save(tx, {
          orgId: session.orgId,
          userId,
          integration,
          credential: source.credential,
          sourceScopes,
        });
        // The row as it was, read in this transaction: still this connection, and not deleted meanwhile.
        if (saved.replaced?.id !== session.reconnectConnectionId || saved.replaced.deletedAt)
          throw new AppError('conflict', 'The connection was deleted while it was being reconnected');
        await this.sessions.setConnection(tx, session.id, saved.connection.id);
        return saved;
      });
    } catch (error) {
      if (error instanceof AppError && error.code === 'conflict') return refuse('conflict', error.message);
      throw error;
    }
    await this.connections
      .forgetReplacedKey(saved)
      .catch((error: unknown) => this.logger.warn({ err: error }, 'the replaced data key was not destroyed'));
    this.logger.info({ connectSession: session.id, connectionId: saved.connection.id }, 'connection reconnected');
    if (!integration.mcp) await this.queueInitialSync(saved.connection.id);
    return {
      redirectUrl: appCallback(session, { connectionId: saved.connection.id }),
      sessionId: session.id,
      connectionId: saved.connection.id,
      orgId: session.orgId,
    };
  }

  /** The first sync of a new (or reconnected) connection. */
  private async queueInitialSync(connectionId: string): Promise<void> {
    await this.publisher.publish(events.syncJobRequested, {
      jobId: randomUUID(),
      connectionId,
      reason: SyncReason.INITIAL,
      requestedAt: timestampFromDate(this.clock.date()),
    });
  }
}
