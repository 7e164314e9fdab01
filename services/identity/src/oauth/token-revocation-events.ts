import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, TokenRevocationKind } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import {
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Logger } from 'pino';

import { IDENTITY_DB, type IdentityDb } from '../database/database.module.js';
import type { TokenRevocationOutbox } from '../generated/prisma/client.js';

export { TokenRevocationKind };

/** Attempts at publishing one revocation while the revoking request waits. */
const ATTEMPTS = 3;
/** How often the sweep publishes revocations a failed attempt (or a crash) left in the outbox. */
export const TOKEN_REVOCATION_SWEEP_MS = 5_000;

/**
 * Publishes `control.v1.tokens_revoked` on the CONTROL stream: every gateway refuses, from
 * its next request, the access tokens issued at or before the revocation for a grant (token
 * family), an application or a person (docs/identity.md). Awaited before the revoking
 * request answers, so "revoked" in a response means "refused everywhere from now on".
 *
 * Through an outbox (`token_revocation_outbox`): the event is stored before the publish and
 * deleted once JetStream acknowledged it. A publish that fails (NATS or the stream away, the
 * process killed) stays there and the sweep publishes it later with its original time, so a
 * revocation is never lost, only late, including those no caller waits for (a refresh
 * token's reuse detected inside oidc-provider). The event id is the JetStream message id: a
 * repeat after an unacknowledged success is dropped by the stream.
 */
@Injectable()
export class TokenRevocationEvents implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly publisher: JetStreamPublisher,
    @Inject(IDENTITY_DB) private readonly db: IdentityDb,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), TOKEN_REVOCATION_SWEEP_MS);
    this.timer.unref();
    void this.sweep();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  async revoked(orgId: string, kind: TokenRevocationKind, subjectId: string): Promise<void> {
    // The wall clock, as oidc-provider's `iat` is: the gateway compares the two.
    const pending = await this.db.tokenRevocationOutbox.create({
      data: { eventId: randomUUID(), orgId, kind, subjectId, revokedAt: new Date() },
    });
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publish(pending);
        return;
      } catch (error) {
        if (attempt >= ATTEMPTS) {
          this.logger.error(
            { err: (error as Error).message, orgId, kind: TokenRevocationKind[kind], eventId: pending.eventId },
            'tokens_revoked not published yet: kept in the outbox, the sweep retries it',
          );
          throw new AppError(
            'service_unavailable',
            'The revocation is stored; the gateways are told as soon as the event stream takes it',
            [],
            { cause: error },
          );
        }
      }
    }
  }

  /** Publishes every pending revocation, oldest first; stops at the first failure (retried next time). */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        for (;;) {
          const batch = await this.db.tokenRevocationOutbox.findMany({ orderBy: { createdAt: 'asc' }, take: 100 });
          for (const pending of batch) await this.publish(pending);
          if (batch.length < 100) return;
        }
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'tokens_revoked sweep failed; retrying later');
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  private async publish(pending: TokenRevocationOutbox): Promise<void> {
    await this.publisher.publish(
      events.tokensRevoked,
      {
        eventId: pending.eventId,
        orgId: pending.orgId,
        kind: pending.kind,
        subjectId: pending.subjectId,
        revokedAt: timestampFromDate(pending.revokedAt),
      },
      { timeoutMs: 1_000 },
    );
    await this.db.tokenRevocationOutbox.deleteMany({ where: { eventId: pending.eventId } });
  }
}

/** One publisher and one sweep per process, for every context that revokes tokens. */
@Global()
@Module({ providers: [TokenRevocationEvents], exports: [TokenRevocationEvents] })
export class TokenRevocationsModule {}
