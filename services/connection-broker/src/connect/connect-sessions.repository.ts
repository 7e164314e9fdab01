import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import type { ConnectSession } from '../generated/prisma/client.js';

export type { ConnectSession };

/**
 * Connect sessions. Every state change is a conditional update (`WHERE status = <from>`):
 * two requests racing on one session (a replayed form post, a replayed callback) find
 * exactly one winner, and the loser changes nothing.
 */
@Injectable()
export class ConnectSessionsRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  /** Runs `work` in one transaction: the connect flow's final commit (session, connection, grant, event). */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction((tx) => work(tx));
  }

  create(data: {
    tokenHash: Buffer;
    orgId: string;
    applicationId: string;
    applicationName: string;
    integration: string;
    scopes: string[];
    callbackUrl: string;
    appState: string;
    forUserId: string | null;
    /** Null for a reconnect: nothing is consented to, no grant follows. */
    consentNonce: string | null;
    reconnectConnectionId?: string;
    expiresAt: Date;
  }): Promise<ConnectSession> {
    return this.db.connectSession.create({ data: { ...data, tokenHash: new Uint8Array(data.tokenHash) } });
  }

  findByTokenHash(tokenHash: Buffer): Promise<ConnectSession | null> {
    return this.db.connectSession.findUnique({ where: { tokenHash: new Uint8Array(tokenHash) } });
  }

  findByStateHash(stateHash: Buffer): Promise<ConnectSession | null> {
    return this.db.connectSession.findUnique({ where: { oauthStateHash: new Uint8Array(stateHash) } });
  }

  /**
   * pending → authorizing, storing who allowed (and their signed consent) and the
   * state/verifier; false when someone else moved it first.
   */
  async startAuthorizing(
    id: string,
    userId: string,
    stateHash: Buffer,
    codeVerifierCiphertext: Buffer,
    consentAssertion: string,
    now: Date,
  ): Promise<boolean> {
    const { count } = await this.db.connectSession.updateMany({
      where: { id, status: 'pending', expiresAt: { gt: now } },
      data: {
        status: 'authorizing',
        userId,
        oauthStateHash: new Uint8Array(stateHash),
        codeVerifierCiphertext: new Uint8Array(codeVerifierCiphertext),
        consentAssertion,
      },
    });
    return count === 1;
  }

  /** Forgets the state (single use): true for exactly one caller presenting it. */
  async claimState(id: string, stateHash: Buffer): Promise<boolean> {
    const { count } = await this.db.connectSession.updateMany({
      where: { id, status: 'authorizing', oauthStateHash: new Uint8Array(stateHash) },
      data: { oauthStateHash: null },
    });
    return count === 1;
  }

  /**
   * Claims a session to finish it (from `from`), consuming it: the one caller that gets
   * true does the work; the verifier is wiped in the same update.
   */
  async finish(
    id: string,
    step: { from: 'pending' | 'authorizing'; to: 'completed' | 'failed'; now: Date; userId?: string },
    tx: Tx = this.db,
  ): Promise<boolean> {
    const { count } = await tx.connectSession.updateMany({
      where: { id, status: step.from },
      data: {
        status: step.to,
        finishedAt: step.now,
        codeVerifierCiphertext: null,
        ...(step.userId ? { userId: step.userId } : {}),
      },
    });
    return count === 1;
  }

  async setConnection(tx: Tx, id: string, connectionId: string): Promise<void> {
    await tx.connectSession.update({ where: { id }, data: { connectionId } });
  }
}
