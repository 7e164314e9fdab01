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
import { appCallback, type FlowResult } from './flow-result.js';

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
    if (saved) await this.queueInitialSync(connectionId);
    return {
      redirectUrl: appCallback(session, { connectionId }),
      sessionId: session.id,
      connectionId,
      grantId: change.grant.id,
      orgId: session.orgId,
      applicationId: session.applicationId,
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
