import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { personalServerRpc } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import { type ConnectionDeletion, ConnectionDeletionsRepository } from './connection-deletions.repository.js';

/** How often the sweep looks for deliveries that are due. */
const SWEEP_EVERY_MS = 2_000;
/** Deliveries per sweep: each is one round trip to a shard. */
const SWEEP_BATCH = 50;
/** A claimed delivery is left alone this long: longer than the shard call's own timeout. */
const LEASE_MS = 30_000;
/** A fresh deletion is the deleting request's to try first; the sweep takes it after this (a crash in between). */
const UNTRIED_GRACE_MS = 10_000;
/** The shard call's timeout: a shred is one transaction and one key-file unlink at the owner. */
const DELIVERY_TIMEOUT_MS = 10_000;
/** Backoff after the n-th failure: 1 s, 2 s, 4 s … capped at 5 minutes, forever (never given up). */
const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_CAP_MS = 5 * 60_000;

export function retryDelayMs(failures: number): number {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 20));
}

/**
 * Delivers connection deletions to the Personal Server until its owning shard confirms:
 * records dropped and the connection's data key destroyed there. A deletion is queued in the
 * broker's own transaction (ConnectionDeletionsRepository.queue); `deliverNow` tries it at
 * once for the person who is waiting, and the sweep retries whatever is left — after a shard
 * outage, a timeout, or a broker restart (the first sweep runs at boot). The shard's
 * `ps.v1.delete_connection` is idempotent: a connection already shredded confirms again.
 */
@Injectable()
export class ConnectionDeletionsRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly outbox: ConnectionDeletionsRepository,
    private readonly rpc: RpcClient,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** After the deletion committed: one delivery now. True when the shard confirmed it; never throws. */
  async deliverNow(connectionId: string): Promise<boolean> {
    try {
      const [deletion] = await this.claim([connectionId]);
      return deletion ? await this.deliver(deletion) : false;
    } catch (error) {
      this.logger.warn({ connectionId, errorCode: AppError.from(error).code }, 'connection deletion left to the sweep');
      return false;
    }
  }

  /** One sweep over due deliveries. Returns how many the shards confirmed. */
  sweep(): Promise<number> {
    const run = this.#sweeping.then(async () => {
      let confirmed = 0;
      for (const deletion of await this.claim()) if (await this.deliver(deletion)) confirmed += 1;
      return confirmed;
    });
    this.#sweeping = run.catch(() => undefined);
    return run;
  }

  onApplicationBootstrap(): void {
    const tick = () =>
      void this.sweep().catch((error: unknown) =>
        this.logger.warn({ errorCode: AppError.from(error).code }, 'connection deletion sweep failed; retrying'),
      );
    tick(); // deletions a previous run left unconfirmed are picked up at boot
    this.#timer = setInterval(tick, SWEEP_EVERY_MS);
    this.#timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  private claim(ids?: string[]): Promise<ConnectionDeletion[]> {
    const now = this.clock.now();
    return this.outbox.claimDue({
      now: new Date(now),
      leaseUntil: new Date(now + LEASE_MS),
      limit: ids?.length ?? SWEEP_BATCH,
      untriedBefore: new Date(now - UNTRIED_GRACE_MS),
      ...(ids ? { ids } : {}),
    });
  }

  /** One delivery of a claimed deletion; the outcome is recorded, never thrown. */
  private async deliver(deletion: ConnectionDeletion): Promise<boolean> {
    const { connectionId, userId } = deletion;
    try {
      const result = await this.rpc.request(
        personalServerRpc.deleteConnection,
        { connectionId, userId },
        { timeoutMs: DELIVERY_TIMEOUT_MS },
      );
      await this.outbox.confirm(deletion, this.clock.date());
      this.logger.info(
        {
          connectionId,
          attempts: deletion.attempts + 1,
          recordsDeleted: result.recordsDeleted,
          grantsRevoked: result.grantsRevoked,
        },
        'personal server confirmed the connection is shredded',
      );
      return true;
    } catch (error) {
      const code = AppError.from(error).code;
      const failures = deletion.attempts + 1;
      const retryInMs = retryDelayMs(failures);
      await this.outbox.failed(deletion, code, new Date(this.clock.now() + retryInMs)).catch((dbError: unknown) =>
        // The lease runs out on its own: the delivery is due again after LEASE_MS.
        this.logger.warn({ connectionId, errorCode: AppError.from(dbError).code }, 'deletion attempt not recorded'),
      );
      // `errorCode`, not `code`: the log redaction hides a bare `code` (it could be an OAuth code).
      const line = { connectionId, errorCode: code, attempts: failures, retryInMs };
      if (failures >= 5) this.logger.error(line, 'personal server keeps failing to shred a deleted connection');
      else this.logger.warn(line, 'personal server did not confirm shredding the connection; will retry');
      return false;
    }
  }
}
