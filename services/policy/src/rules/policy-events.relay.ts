import { randomUUID } from 'node:crypto';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, PolicyChangedSchema } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Tx } from '../database/database.module.js';
import { type PolicyEvent, PolicyEventsRepository } from './policy-events.repository.js';

/**
 * How often the sweep looks for events whose first publish failed, and how old (by the
 * injected Clock) they must be: younger ones are most likely still being flushed by the
 * commit that wrote them.
 */
const SWEEP_EVERY_MS = 2_000;
export const SWEEP_AFTER_MS = 2_000;

/**
 * control.v1.policy_changed through a transactional outbox: `record` writes the event in the
 * transaction that bumped the org's revision; `flush` publishes it right after the commit; a
 * sweep re-publishes whatever a failed flush (NATS down, a crash between commit and publish)
 * left behind, until JetStream acknowledges it. So every committed revision reaches the
 * CONTROL stream at least once; Nats-Msg-Id (org + revision) and the gateways' "highest
 * revision wins" make the second copy change nothing.
 */
@Injectable()
export class PolicyEventsRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly outbox: PolicyEventsRepository,
    private readonly publisher: JetStreamPublisher,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Inside the revision bump's transaction: the event that announces it. Returns its id. */
  async record(tx: Tx, orgId: string, revision: bigint, cause: string): Promise<string> {
    const id = randomUUID();
    const now = this.clock.date();
    const message = create(PolicyChangedSchema, {
      eventId: id,
      orgId,
      revision,
      cause,
      occurredAt: timestampFromDate(now),
    });
    await this.outbox.add(tx, { id, orgId, revision, payload: toBinary(PolicyChangedSchema, message), createdAt: now });
    return id;
  }

  /**
   * After the commit: publish these now. True when JetStream acknowledged them all; a failure
   * is logged and left to the sweep, never thrown (the change itself is committed).
   */
  async flush(ids: string[]): Promise<boolean> {
    if (ids.length === 0) return true;
    try {
      const published = await this.outbox.withUnpublished({ ids }, (pending, tx) => this.publishAll(pending, tx));
      return published === ids.length;
    } catch (error) {
      this.logger.warn(
        { code: AppError.from(error).code, events: ids.length },
        'policy_changed not published yet; the outbox sweep will retry',
      );
      return false;
    }
  }

  /** One sweep over events older than SWEEP_AFTER_MS that are still unpublished. Returns how many it published. */
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
        this.logger.warn({ code: AppError.from(error).code }, 'policy_changed outbox sweep failed; retrying'),
      );
    }, SWEEP_EVERY_MS);
    this.#timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  private async publishAll(pending: PolicyEvent[], tx: Tx): Promise<number> {
    for (const event of pending) {
      const message = fromBinary(PolicyChangedSchema, event.payload);
      await this.publisher.publish(events.policyChanged, message);
      await this.outbox.markPublished(tx, event.id, this.clock.date());
      this.logger.info(
        { orgId: event.orgId, revision: event.revision.toString(), cause: message.cause },
        'policy changed',
      );
    }
    return pending.length;
  }
}
