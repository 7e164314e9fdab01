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
 * when a connection's deletion could not revoke at the shard. Only REVOKED events are
 * applied: revoking is idempotent and fails closed, whereas replaying an ACTIVE event could
 * resurrect a grant revoked since — registration stays the broker's synchronous call. Known
 * gap: a re-consent keeps the grant's id (the broker bumps its revision), and events are not
 * yet ordered by revision here, so a REVOKED event delivered after a re-consent revokes the
 * re-activated grant (closed, not wider; docs/connect-flow.md, "Not done yet").
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
