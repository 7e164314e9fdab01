import { randomUUID } from 'node:crypto';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, GrantChangedSchema, GrantStatus } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Tx } from '../database/database.module.js';
import { WebhookOutbox } from '../webhooks/webhook-outbox.js';
import { type GrantEvent, GrantEventsRepository } from './grant-events.repository.js';
import type { Grant } from './grants.repository.js';

/**
 * How often the sweep looks for events whose first publish failed, and how old (by the
 * injected Clock) they must be: younger ones are most likely still being flushed by the
 * commit that wrote them.
 */
const SWEEP_EVERY_MS = 2_000;
export const SWEEP_AFTER_MS = 2_000;

/**
 * control.v1.grant_changed through a transactional outbox: `record` writes the event in the
 * grant's own transaction; `flush` publishes it right after the commit; a sweep re-publishes
 * whatever a failed flush (NATS down, a crash between commit and publish) left behind. So a
 * committed grant change always reaches the CONTROL stream, at least once, de-duplicated
 * there by Nats-Msg-Id.
 */
@Injectable()
export class GrantEventsRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly outbox: GrantEventsRepository,
    private readonly publisher: JetStreamPublisher,
    private readonly clock: Clock,
    private readonly webhooks: WebhookOutbox,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Inside the grant's transaction: the event that describes this change, and the app's
   * webhook (`connection.created` when the grant is active, `grant.revoked` when not). Returns its id.
   */
  async record(tx: Tx, grant: Grant, integration: string): Promise<string> {
    const id = randomUUID();
    const message = create(GrantChangedSchema, {
      eventId: id,
      grantId: grant.id,
      orgId: grant.orgId,
      applicationId: grant.applicationId,
      userId: grant.userId,
      connectionId: grant.connectionId,
      integration,
      scopes: grant.scopes,
      status: grant.status === 'active' ? GrantStatus.ACTIVE : GrantStatus.REVOKED,
      revision: BigInt(grant.revision),
      occurredAt: timestampFromDate(grant.updatedAt),
    });
    await this.outbox.add(tx, {
      id,
      grantId: grant.id,
      revision: grant.revision,
      payload: toBinary(GrantChangedSchema, message),
      createdAt: this.clock.date(),
    });
    await this.webhooks.enqueue(tx, {
      applicationId: grant.applicationId,
      orgId: grant.orgId,
      connectionId: grant.connectionId,
      type: grant.status === 'active' ? 'connection.created' : 'grant.revoked',
      data: { integration, grantId: grant.id, scopes: grant.scopes },
    });
    return id;
  }

  /** After the commit: publish these now. A failure is logged and left to the sweep, never thrown. */
  async flush(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.outbox.withUnpublished({ ids }, (pending, tx) => this.publishAll(pending, tx));
    } catch (error) {
      this.logger.warn(
        { code: AppError.from(error).code, events: ids.length },
        'grant_changed not published yet; the outbox sweep will retry',
      );
    }
  }

  /** One sweep over events older than SWEEP_AFTER_MS that are still unpublished. */
  sweep(): Promise<number> {
    const run = this.#sweeping.then(async () => {
      const olderThan = new Date(this.clock.now() - SWEEP_AFTER_MS);
      // Almost every tick finds nothing: look first, lock (a transaction) only when there is work.
      if (!(await this.outbox.anyUnpublished(olderThan))) return 0;
      return this.outbox.withUnpublished({ olderThan, limit: 100 }, (pending, tx) => this.publishAll(pending, tx));
    });
    this.#sweeping = run.catch(() => undefined);
    return run;
  }

  onApplicationBootstrap(): void {
    this.#timer = setInterval(() => {
      this.sweep().catch((error: unknown) =>
        this.logger.warn({ code: AppError.from(error).code }, 'grant_changed outbox sweep failed; retrying'),
      );
    }, SWEEP_EVERY_MS);
    this.#timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  private async publishAll(pending: GrantEvent[], tx: Tx): Promise<number> {
    for (const event of pending) {
      const message = fromBinary(GrantChangedSchema, event.payload);
      await this.publisher.publish(events.grantChanged, message);
      await this.outbox.markPublished(tx, event.id, this.clock.date());
      this.logger.info(
        {
          grantId: event.grantId,
          revision: event.revision,
          status: message.status === GrantStatus.ACTIVE ? 'active' : 'revoked',
        },
        'grant changed',
      );
    }
    return pending.length;
  }
}
