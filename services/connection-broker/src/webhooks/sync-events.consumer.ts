import { timestampDate } from '@bufbuild/protobuf/wkt';
import { consumeEvents, type RunningConsumer } from '@context-gateway/messaging';
import { consumers, events, SyncRunOutcome } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import { BROKER_DB, type BrokerDb } from '../database/database.module.js';
import { WebhookOutbox } from './webhook-outbox.js';

/**
 * sync.v1.events.run_finished → `sync.completed` / `sync.failed` webhook messages for every
 * application holding an active grant on the connection, queued in one transaction; the
 * message is acked only after that commit, so a broker that dies in between gets it again
 * (an event id already queued is skipped).
 */
@Injectable()
export class SyncEventsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer: RunningConsumer | undefined;

  constructor(
    @Inject(BROKER_DB) private readonly db: BrokerDb,
    private readonly outbox: WebhookOutbox,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.consumer = await consumeEvents(
      this.nc,
      events.syncRunFinished,
      { durable: consumers.brokerSyncEvents.durable, concurrency: 4 },
      async (event) => {
        const completed = event.outcome === SyncRunOutcome.COMPLETED;
        const finishedAt = event.finishedAt ? timestampDate(event.finishedAt).toISOString() : undefined;
        await this.db.$transaction(async (tx) => {
          // FOR SHARE: a revocation committing meanwhile waits for this commit, or this read
          // waits for it and no longer sees the grant. Either way an app's sync.completed
          // never comes after its grant.revoked.
          const grants = await tx.$queryRaw<{ applicationId: string; orgId: string }[]>`
            SELECT application_id::text AS "applicationId", org_id::text AS "orgId" FROM grants
            WHERE connection_id = ${event.connectionId}::uuid AND status = 'active' FOR SHARE`;
          for (const grant of grants)
            await this.outbox.enqueue(
              tx,
              {
                applicationId: grant.applicationId,
                orgId: grant.orgId,
                connectionId: event.connectionId,
                type: completed ? 'sync.completed' : 'sync.failed',
                data: completed
                  ? {
                      integration: event.integration,
                      records: Number(event.records),
                      skipped: event.skippedTotal,
                      finishedAt,
                    }
                  : { integration: event.integration, errorCode: event.errorCode, finishedAt },
              },
              `${event.eventId}:${grant.applicationId}`,
            );
        });
      },
      this.logger,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.consumer?.stop();
  }
}
