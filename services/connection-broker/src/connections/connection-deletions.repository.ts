import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import type { ConnectionDeletion } from '../generated/prisma/client.js';

export type { ConnectionDeletion };

/** The connection-deletion outbox (ConnectionDeletion in schema.prisma). */
@Injectable()
export class ConnectionDeletionsRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  /**
   * In the deletion's transaction: the shredding to deliver, due at once. A connection that
   * was reconnected and deleted again starts over (a new delivery is owed).
   */
  async queue(tx: Tx, deletion: { connectionId: string; userId: string; now: Date }): Promise<void> {
    const row = {
      userId: deletion.userId,
      requestedAt: deletion.now,
      attempts: 0,
      nextAttemptAt: deletion.now,
      lastError: null,
      confirmedAt: null,
    };
    await tx.connectionDeletion.upsert({
      where: { connectionId: deletion.connectionId },
      create: { connectionId: deletion.connectionId, ...row },
      update: row,
    });
  }

  find(connectionId: string, tx: Tx = this.db): Promise<ConnectionDeletion | null> {
    return tx.connectionDeletion.findUnique({ where: { connectionId } });
  }

  /**
   * Claims up to `limit` unconfirmed deliveries that are due (or just these ids, if due), by
   * pushing their next attempt past `leaseUntil`: another replica's sweep skips them while
   * this one calls the shard, and a replica that dies mid-call leaves them due again once the
   * lease runs out. No transaction stays open across the call to the shard. A sweep (no ids)
   * leaves a never-tried deletion requested after `untriedBefore` to the request that queued
   * it, which is about to try it: the person then hears `deleted` rather than `deleting`.
   */
  async claimDue(filter: {
    now: Date;
    leaseUntil: Date;
    limit: number;
    ids?: string[];
    untriedBefore?: Date;
  }): Promise<ConnectionDeletion[]> {
    const ids = filter.ids ?? null;
    const untriedBefore = filter.untriedBefore ?? filter.now;
    const claimed = await this.db.$queryRaw<{ connection_id: string }[]>`
      UPDATE connection_deletions SET next_attempt_at = ${filter.leaseUntil}
       WHERE connection_id IN (
         SELECT connection_id FROM connection_deletions
          WHERE confirmed_at IS NULL AND next_attempt_at <= ${filter.now}
            AND (${ids}::uuid[] IS NULL OR connection_id = ANY(${ids}::uuid[]))
            AND (${ids}::uuid[] IS NOT NULL OR attempts > 0 OR requested_at < ${untriedBefore})
          ORDER BY next_attempt_at
          LIMIT ${filter.limit}
          FOR UPDATE SKIP LOCKED)
       RETURNING connection_id`;
    if (claimed.length === 0) return [];
    return this.db.connectionDeletion.findMany({
      where: { connectionId: { in: claimed.map((r) => r.connection_id) } },
      orderBy: { requestedAt: 'asc' },
    });
  }

  /**
   * The shard confirmed. Conditional on the request being the one delivered: a reconnect
   * and a new deletion in between queued a new one, which this confirmation does not cover.
   */
  async confirm(deletion: ConnectionDeletion, at: Date): Promise<boolean> {
    const { count } = await this.db.connectionDeletion.updateMany({
      where: { connectionId: deletion.connectionId, requestedAt: deletion.requestedAt, confirmedAt: null },
      data: { confirmedAt: at, attempts: { increment: 1 }, lastError: null },
    });
    return count === 1;
  }

  /** A delivery failed: counted, with its error code, and due again at `retryAt`. */
  async failed(deletion: ConnectionDeletion, code: string, retryAt: Date): Promise<void> {
    await this.db.connectionDeletion.updateMany({
      where: { connectionId: deletion.connectionId, requestedAt: deletion.requestedAt, confirmedAt: null },
      data: { attempts: { increment: 1 }, lastError: code, nextAttemptAt: retryAt },
    });
  }

  /** Deliveries not confirmed yet, and how long the oldest has waited (seconds, by the database's clock). */
  async pendingStats(): Promise<{ pending: number; oldestSeconds: number }> {
    const [row] = await this.db.$queryRaw<{ pending: number; oldest: number | null }[]>`
      SELECT count(*)::int AS pending, extract(epoch FROM now() - min(requested_at))::float8 AS oldest
        FROM connection_deletions WHERE confirmed_at IS NULL`;
    return { pending: row?.pending ?? 0, oldestSeconds: Math.max(0, row?.oldest ?? 0) };
  }
}
