import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb } from '../database/database.module.js';
import type { WebhookEndpoint, WebhookMessage } from '../generated/prisma/client.js';

export type { WebhookEndpoint, WebhookMessage };

/** Webhook endpoints and the delivery queue. */
@Injectable()
export class WebhooksRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  endpoint(applicationId: string): Promise<WebhookEndpoint | null> {
    return this.db.webhookEndpoint.findUnique({ where: { applicationId } });
  }

  upsertEndpoint(
    applicationId: string,
    create: Omit<WebhookEndpoint, 'applicationId'>,
    update: Partial<Omit<WebhookEndpoint, 'applicationId' | 'orgId' | 'createdAt'>>,
  ): Promise<WebhookEndpoint> {
    return this.db.webhookEndpoint.upsert({
      where: { applicationId },
      create: { applicationId, ...create },
      update,
    });
  }

  updateEndpoint(
    applicationId: string,
    data: Partial<Omit<WebhookEndpoint, 'applicationId' | 'orgId' | 'createdAt'>>,
  ): Promise<WebhookEndpoint> {
    return this.db.webhookEndpoint.update({ where: { applicationId }, data });
  }

  /** The endpoint and every message still waiting for it (a deleted endpoint is told nothing more). */
  async deleteEndpoint(applicationId: string): Promise<boolean> {
    return this.db.$transaction(async (tx) => {
      await tx.webhookMessage.updateMany({
        where: { applicationId, status: 'pending' },
        data: { status: 'failed', lastError: 'endpoint_deleted' },
      });
      const { count } = await tx.webhookEndpoint.deleteMany({ where: { applicationId } });
      return count === 1;
    });
  }

  /** Newest first; `beforeSeq` continues a listing. */
  listMessages(applicationId: string, limit: number, beforeSeq: bigint | undefined): Promise<WebhookMessage[]> {
    return this.db.webhookMessage.findMany({
      where: { applicationId, ...(beforeSeq !== undefined ? { seq: { lt: beforeSeq } } : {}) },
      orderBy: { seq: 'desc' },
      take: limit,
    });
  }

  message(applicationId: string, id: string): Promise<WebhookMessage | null> {
    return this.db.webhookMessage.findFirst({ where: { id, applicationId } });
  }

  /** Queued again for now, attempts from zero; the same id (receivers de-duplicate by it). */
  replay(id: string, now: Date): Promise<WebhookMessage> {
    return this.db.webhookMessage.update({
      where: { id },
      data: {
        status: 'pending',
        attempts: 0,
        nextAttemptAt: now,
        lastError: null,
        lastStatus: null,
        deliveredAt: null,
      },
    });
  }

  /**
   * Leases up to `limit` due messages: each the oldest pending one of its (application,
   * connection), so a connection's events go out in order, one at a time. The lease is the
   * next attempt time moved `leaseMs` ahead; another replica skips the locked rows and, after
   * the lease, a message whose deliverer died.
   */
  async leaseDue(
    now: Date,
    limit: number,
    leaseMs: number,
  ): Promise<(WebhookMessage & { endpoint: WebhookEndpoint })[]> {
    return this.db.$transaction(async (tx) => {
      const due = await tx.$queryRaw<{ id: string }[]>`
        SELECT m.id FROM webhook_messages m
        WHERE m.status = 'pending' AND m.next_attempt_at <= ${now}
          AND NOT EXISTS (
            SELECT 1 FROM webhook_messages e
            WHERE e.application_id = m.application_id
              AND e.connection_id IS NOT DISTINCT FROM m.connection_id
              AND e.status = 'pending' AND e.seq < m.seq)
        ORDER BY m.seq
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`;
      if (due.length === 0) return [];
      const ids = due.map((r) => r.id);
      await tx.webhookMessage.updateMany({
        where: { id: { in: ids } },
        data: { nextAttemptAt: new Date(now.getTime() + leaseMs) },
      });
      const messages = await tx.webhookMessage.findMany({ where: { id: { in: ids } }, orderBy: { seq: 'asc' } });
      const endpoints = await tx.webhookEndpoint.findMany({
        where: { applicationId: { in: [...new Set(messages.map((m) => m.applicationId))] } },
      });
      const byApp = new Map(endpoints.map((e) => [e.applicationId, e]));
      return messages.flatMap((m) => {
        const endpoint = byApp.get(m.applicationId);
        return endpoint ? [{ ...m, endpoint }] : [];
      });
    });
  }

  delivered(id: string, status: number, at: Date): Promise<unknown> {
    return this.db.webhookMessage.updateMany({
      where: { id, status: 'pending' },
      data: { status: 'delivered', attempts: { increment: 1 }, lastStatus: status, lastError: null, deliveredAt: at },
    });
  }

  attemptFailed(id: string, result: { status: number; error: string; nextAttemptAt: Date | null }): Promise<unknown> {
    return this.db.webhookMessage.updateMany({
      where: { id, status: 'pending' },
      data: {
        attempts: { increment: 1 },
        lastStatus: result.status,
        lastError: result.error,
        ...(result.nextAttemptAt ? { nextAttemptAt: result.nextAttemptAt } : { status: 'failed' }),
      },
    });
  }

  /** For the metrics: messages waiting and the age of the oldest one. */
  async backlog(now: Date): Promise<{ pending: number; oldestSeconds: number }> {
    const [row] = await this.db.$queryRaw<{ pending: number; oldest: Date | null }[]>`
      SELECT count(*)::int AS pending, min(created_at) AS oldest FROM webhook_messages WHERE status = 'pending'`;
    return {
      pending: row?.pending ?? 0,
      oldestSeconds: row?.oldest ? Math.max(0, (now.getTime() - row.oldest.getTime()) / 1000) : 0,
    };
  }
}
