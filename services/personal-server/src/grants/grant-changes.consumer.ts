import { create } from '@bufbuild/protobuf';
import { consumeEvents, type RunningConsumer } from '@context-gateway/messaging';
import { consumers, events, GrantStatus, RevokeGrantRequestSchema } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import { GrantsService } from './grants.service.js';

/** One durable for all shards: each revocation event is applied once (the table is shared). */
const GRANT_CHANGES_DURABLE = consumers.grantChanges.durable;

/**
 * Catch-up for revocations. The broker's synchronous `ps.v1.revoke_grant` is what makes a
 * revocation immediate; this consumer of `control.v1.grant_changed` makes it certain, e.g.
 * when that call timed out after the broker committed. Only REVOKED events are applied:
 * revoking is idempotent and can never be undone by a late message (a new consent is a new
 * grant id, which an old revocation does not match), whereas replaying an ACTIVE event
 * could resurrect a grant revoked since — registration stays the broker's synchronous call.
 */
@Injectable()
export class GrantChangesConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer: RunningConsumer | undefined;

  constructor(
    private readonly grants: GrantsService,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.consumer = await consumeEvents(
      this.nc,
      events.grantChanged,
      { durable: GRANT_CHANGES_DURABLE, concurrency: 4 },
      async (event) => {
        if (event.status !== GrantStatus.REVOKED) return;
        await this.grants
          .revoke(create(RevokeGrantRequestSchema, { grantId: event.grantId }))
          .catch((error: unknown) => {
            // A grant this service never saw (registration failed, or already deleted): nothing to revoke.
            if ((error as { code?: string }).code !== 'not_found') throw error;
          });
      },
      this.logger,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.consumer?.stop();
  }
}
