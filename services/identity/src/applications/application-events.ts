import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Application } from '../generated/prisma/client.js';
import { ApplicationsRepository } from './applications.repository.js';

/** How often the sweep looks for application revisions that were committed but not published. */
const SWEEP_INTERVAL_MS = 15_000;

/**
 * Publishes `control.v1.application_changed` after an application's commit. The row's
 * `published_revision` is the outbox: a publish that fails after the commit (NATS down,
 * process killed) is retried by the sweep, so policy never misses a revision. Consumers
 * apply by (application, revision), so a repeat is harmless.
 */
@Injectable()
export class ApplicationEvents implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly applications: ApplicationsRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
    void this.sweep();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Publishes now; a failure is logged and left to the sweep (the commit already happened). */
  async published(app: Application): Promise<void> {
    try {
      await this.publisher.publish(
        events.applicationChanged,
        {
          eventId: randomUUID(),
          orgId: app.orgId,
          applicationId: app.id,
          integrations: app.integrations,
          scopes: app.scopes,
          active: app.status === 'active',
          revision: app.revision,
          occurredAt: timestampFromDate(app.updatedAt),
          // Well inside the admin request's deadline; a slow stream is the sweep's job.
        },
        { timeoutMs: 1_000 },
      );
      await this.applications.markPublished(app.id, app.revision);
    } catch (error) {
      this.logger.warn(
        { err: (error as Error).message, applicationId: app.id },
        'application_changed not published yet; the sweep will retry',
      );
    }
  }

  async sweep(): Promise<void> {
    try {
      for (const app of await this.applications.unpublished(100)) await this.published(app);
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'application_changed sweep failed');
    }
  }
}
