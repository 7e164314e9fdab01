import { createHash, randomUUID } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { Injectable, Module } from '@nestjs/common';

import type { Tx } from '../database/database.module.js';

/** The events an application can hear (docs/webhooks.md). */
type WebhookEventType =
  | 'connection.created'
  | 'connection.deleted'
  | 'connection.needs_reauth'
  | 'grant.revoked'
  | 'sync.completed'
  | 'sync.failed';

export interface WebhookEvent {
  applicationId: string;
  orgId: string;
  /** The connection the event is about: messages of one connection are delivered in order. */
  connectionId: string;
  type: WebhookEventType;
  data: Record<string, unknown>;
}

/**
 * Queues webhook messages inside the caller's transaction, so an event is stored exactly when
 * the change it tells about commits (a grant, a deletion, a reauthorization) and never
 * otherwise. An application without an endpoint gets nothing queued: configuring one later
 * does not replay history.
 */
@Injectable()
export class WebhookOutbox {
  constructor(private readonly clock: Clock) {}

  /**
   * `dedupKey`: the same key always gives the same message id, and a message already queued
   * under it is not queued again (a redelivered stream event).
   */
  async enqueue(tx: Tx, event: WebhookEvent, dedupKey?: string): Promise<string | undefined> {
    const endpoint = await tx.webhookEndpoint.findUnique({
      where: { applicationId: event.applicationId },
      select: { orgId: true },
    });
    // An endpoint of another organization never hears this one's events.
    if (!endpoint || endpoint.orgId !== event.orgId) return undefined;
    const id = dedupKey ? uuidOf(dedupKey) : randomUUID();
    const now = this.clock.date();
    const body = {
      type: event.type,
      timestamp: now.toISOString(),
      data: { ...event.data, connectionId: event.connectionId },
    };
    await tx.webhookMessage.createMany({
      skipDuplicates: true,
      data: {
        id,
        applicationId: event.applicationId,
        orgId: event.orgId,
        connectionId: event.connectionId,
        type: event.type,
        payload: new Uint8Array(Buffer.from(JSON.stringify(body), 'utf8')),
        nextAttemptAt: now,
        createdAt: now,
      },
    });
    return id;
  }
}

/** A UUID (version 8, RFC 9562) derived from `key`. */
function uuidOf(key: string): string {
  const b = createHash('sha256').update(key).digest().subarray(0, 16);
  b.writeUInt8((b.readUInt8(6) & 0x0f) | 0x80, 6);
  b.writeUInt8((b.readUInt8(8) & 0x3f) | 0x80, 8);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Only the outbox: what the grants and connections contexts need to queue events. */
@Module({ providers: [WebhookOutbox], exports: [WebhookOutbox] })
export class WebhookOutboxModule {}
