import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, SyncReason } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { jobIdFor } from './job-ids.js';
import { SyncStateRepository } from './sync-state.repository.js';

/**
 * Queues a SCHEDULED job for each connection whose interval came round. Every worker runs
 * this loop; exactly one job per connection per interval results, twice guarded: the due
 * rows are claimed with FOR UPDATE SKIP LOCKED (two schedulers never take the same row),
 * and the job id is derived from (connection, due time), so a publish repeated after a
 * crash is dropped by the stream's duplicate window.
 */
@Injectable()
export class SyncScheduler implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly states: SyncStateRepository,
    private readonly publisher: JetStreamPublisher,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    // Jittered start: several workers booted together do not tick in lockstep.
    const tick = () => {
      this.running = this.tick()
        .then(() => undefined)
        .catch((err) => this.logger.warn({ err }, 'scheduler tick failed'))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.env.SYNC_SCHEDULER_TICK_MS);
        });
    };
    this.timer = setTimeout(tick, Math.round(Math.random() * this.env.SYNC_SCHEDULER_TICK_MS));
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    clearTimeout(this.timer);
  }

  /** One pass: claim what is due and queue it. Returns how many jobs were queued. */
  async tick(): Promise<number> {
    let total = 0;
    for (;;) {
      // Only the first claim looks first: another comes only after a full batch.
      const look = total === 0;
      const due = await this.states.claimDue(
        200,
        this.env.SYNC_INTERVAL_MS,
        async (batch) => {
          await Promise.all(
            batch.map((d) =>
              this.publisher.publish(events.syncJobRequested, {
                jobId: jobIdFor(`scheduled:${d.connectionId}:${d.dueAt.getTime()}`),
                connectionId: d.connectionId,
                reason: SyncReason.SCHEDULED,
                requestedAt: timestampFromDate(this.clock.date()),
              }),
            ),
          );
        },
        { look },
      );
      total += due.length;
      if (due.length < 200) return total;
    }
  }
}
