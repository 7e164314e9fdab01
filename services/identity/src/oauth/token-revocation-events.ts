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

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import { Prisma, type TokenRevocationOutbox } from '../generated/prisma/client.js';

export { TokenRevocationKind };

/** Attempts at publishing one revocation while the revoking request waits. */
const ATTEMPTS = 3;
/** Rows one sweep claims at a time. */
const SWEEP_BATCH = 100;
/** Failures in a row after which a sweep gives up until the next tick (the stream is away). */
const SWEEP_FAILURES_IN_A_ROW = 3;
/**
 * Rows younger than this are left to the request that wrote them (its attempts take at most
 * ATTEMPTS publish timeouts): the sweep never holds a row that request is about to delete.
 */
const SWEEP_MIN_AGE_MS = 5_000;
/** The rows a sweep takes; the look and the claim both ask this. */
const SWEEP_DUE = Prisma.sql`created_at < now() - make_interval(secs => ${SWEEP_MIN_AGE_MS / 1_000})`;
/** A sweep publishes for at most this long, well inside its transaction's timeout; the rest waits for the next tick. */
const SWEEP_BUDGET_MS = 20_000;

/** What a revocation voids: every token of this grant, application, person or API key issued until now. */
export interface RevokedSubject {
  orgId: string;
  kind: TokenRevocationKind;
  subjectId: string;
}
/** How often the sweep publishes revocations a failed attempt (or a crash) left in the outbox. */
export const TOKEN_REVOCATION_SWEEP_MS = 5_000;

/**
 * Publishes `control.v1.tokens_revoked` on the CONTROL stream: every gateway refuses, from
 * its next request, the access tokens issued at or before the revocation for a grant (token
 * family), an application or a person (docs/identity.md). Awaited before the revoking
 * request answers, so "revoked" in a response means "refused everywhere from now on".
 *
 * Through an outbox (`token_revocation_outbox`): the event is stored in the revocation's own
 * transaction, before the publish, and deleted once JetStream acknowledged it. A publish that fails (NATS or the stream away, the
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

  /**
   * Runs `change` (the revocation itself: rows deleted or marked) and stores the event in the
   * same transaction, then publishes it. Either both happen or neither: a revocation whose
   * event was lost, or an event for a change rolled back, cannot be. `subject` names what the
   * change revoked, from its result; undefined (nothing found, nothing revoked) publishes nothing.
   */
  async revoke<T>(change: (tx: Tx) => Promise<T>, subject: (result: T) => RevokedSubject | undefined): Promise<T> {
    const { result, pending } = await this.db.$transaction(async (tx) => {
      const result = await change(tx);
      const revoked = subject(result);
      return { result, pending: revoked && (await this.store(tx, revoked)) };
    });
    if (!pending) return result;
    // Dated again now that the change is committed: a token issued while the transaction was
    // still open (it could not see the revocation yet) must not be newer than the event says.
    // Should the process stop before this, the time from inside the transaction stands.
    await this.announce(
      await this.db.tokenRevocationOutbox.update({
        where: { eventId: pending.eventId },
        data: { revokedAt: new Date() },
      }),
    );
    return result;
  }

  /**
   * For a revocation already done outside identity's transactions (oidc-provider deleting a
   * grant whose spent refresh token was replayed): stored, then published. A crash between
   * the two loses nothing; a crash before the store leaves the grant's refresh tokens gone
   * and its access tokens living out their (short) lifetime.
   */
  async revoked(orgId: string, kind: TokenRevocationKind, subjectId: string): Promise<void> {
    await this.announce(await this.store(this.db, { orgId, kind, subjectId }));
  }

  private store(tx: Tx, { orgId, kind, subjectId }: RevokedSubject): Promise<TokenRevocationOutbox> {
    // The wall clock, as oidc-provider's `iat` is: the gateway compares the two. Taken after
    // the change, so every token issued before it is covered.
    return tx.tokenRevocationOutbox.create({
      data: { eventId: randomUUID(), orgId, kind, subjectId, revokedAt: new Date() },
    });
  }

  /** Published while the revoking request waits; on failure the sweep takes over and the caller hears service_unavailable. */
  private async announce(pending: TokenRevocationOutbox): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publish(pending);
        await this.db.tokenRevocationOutbox.deleteMany({ where: { eventId: pending.eventId } });
        return;
      } catch (error) {
        if (attempt >= ATTEMPTS) {
          this.logger.error(
            {
              err: (error as Error).message,
              orgId: pending.orgId,
              kind: TokenRevocationKind[pending.kind],
              eventId: pending.eventId,
            },
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

  /**
   * Publishes pending revocations, oldest first, once they are SWEEP_MIN_AGE_MS old (younger
   * ones belong to the request that wrote them). Replicas share the work: each claims its
   * batch with `FOR UPDATE SKIP LOCKED`, so two never publish the same rows at once (a repeat
   * would be harmless anyway: the event id is the JetStream message id). A row that fails is
   * left for the next sweep and the rest go on; after a few failures in a row the stream is
   * taken to be away and the sweep stops until the next tick, as it does after SWEEP_BUDGET_MS.
   */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        // Almost every tick finds nothing: look first (one statement), open the claiming
        // transaction only when a row is due.
        if (!(await this.anyDue())) return;
        // Batch after batch while they come full and go through; the rest waits for the next tick.
        for (;;) {
          const { claimed, complete } = await this.db.$transaction((tx) => this.sweepBatch(tx), {
            // Publishing a full batch while the stream is slow takes a while; the rows stay claimed meanwhile.
            timeout: 60_000,
            maxWait: 10_000,
          });
          if (claimed < SWEEP_BATCH || !complete) return;
        }
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'tokens_revoked sweep failed; retrying later');
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Whether a row is old enough for the sweep; the claim itself re-reads under its lock. */
  private async anyDue(): Promise<boolean> {
    const [row] = await this.db.$queryRaw<{ due: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM token_revocation_outbox
         WHERE ${SWEEP_DUE}) AS due`;
    return row?.due === true;
  }

  /** One claimed batch: publishes what it can, deletes what went through; `complete` when every row did. */
  private async sweepBatch(tx: Tx): Promise<{ claimed: number; complete: boolean }> {
    const batch = await tx.$queryRaw<TokenRevocationOutbox[]>`
      SELECT event_id AS "eventId", org_id AS "orgId", kind, subject_id AS "subjectId",
             revoked_at AS "revokedAt", created_at AS "createdAt"
        FROM token_revocation_outbox
       WHERE ${SWEEP_DUE}
       ORDER BY created_at
       LIMIT ${SWEEP_BATCH}
         FOR UPDATE SKIP LOCKED`;
    const published: string[] = [];
    let inARow = 0;
    const deadline = Date.now() + SWEEP_BUDGET_MS;
    for (const pending of batch) {
      if (Date.now() > deadline || inARow >= SWEEP_FAILURES_IN_A_ROW) break;
      try {
        await this.publish(pending);
        published.push(pending.eventId);
        inARow = 0;
      } catch (error) {
        inARow += 1;
        this.logger.warn(
          { err: (error as Error).message, eventId: pending.eventId },
          'tokens_revoked sweep: not published, retried later',
        );
      }
    }
    if (published.length > 0) {
      await tx.tokenRevocationOutbox.deleteMany({ where: { eventId: { in: published } } });
    }
    return { claimed: batch.length, complete: published.length === batch.length };
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
  }
}

/** One publisher and one sweep per process, for every context that revokes tokens. */
@Global()
@Module({ providers: [TokenRevocationEvents], exports: [TokenRevocationEvents] })
export class TokenRevocationsModule {}
