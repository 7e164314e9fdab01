import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import { type GrantEvent, Prisma } from '../generated/prisma/client.js';

export type { GrantEvent };

/** Which unpublished events to take: the ones a commit just wrote, or the sweep's leftovers older than a moment. */
type UnpublishedFilter = { ids: string[] } | { olderThan: Date; limit: number };

/** The sweep's rows: unpublished and older than `olderThan`; the look and the lock both ask this. */
function dueOlderThan(olderThan: Date): Prisma.Sql {
  return Prisma.sql`published_at IS NULL AND created_at < ${olderThan}`;
}

/** The grant_changed outbox. */
@Injectable()
export class GrantEventsRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  /** `createdAt` comes from the caller's clock: the sweep compares it with the same clock's "now". */
  async add(
    tx: Tx,
    event: { id: string; grantId: string; revision: number; payload: Uint8Array; createdAt: Date },
  ): Promise<void> {
    await tx.grantEvent.create({ data: { ...event, payload: new Uint8Array(event.payload) } });
  }

  /**
   * Whether any event older than `olderThan` is still unpublished: one statement outside a
   * transaction, so an idle sweep costs one round trip, not an interactive transaction's three.
   */
  async anyUnpublished(olderThan: Date): Promise<boolean> {
    const [row] = await this.db.$queryRaw<{ due: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM grant_events WHERE ${dueOlderThan(olderThan)}) AS due`;
    return row?.due === true;
  }

  /** Runs `work` with unpublished events locked (others skip them), oldest first. */
  async withUnpublished<T>(filter: UnpublishedFilter, work: (events: GrantEvent[], tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction(async (tx) => {
      const locked =
        'ids' in filter
          ? await tx.$queryRaw<
              { id: string }[]
            >`SELECT id FROM grant_events WHERE published_at IS NULL AND id = ANY(${filter.ids}::uuid[]) ORDER BY created_at FOR UPDATE SKIP LOCKED`
          : await tx.$queryRaw<
              { id: string }[]
            >`SELECT id FROM grant_events WHERE ${dueOlderThan(filter.olderThan)} ORDER BY created_at LIMIT ${filter.limit} FOR UPDATE SKIP LOCKED`;
      const events = locked.length
        ? await tx.grantEvent.findMany({
            where: { id: { in: locked.map((r) => r.id) } },
            orderBy: { createdAt: 'asc' },
          })
        : [];
      return work(events, tx);
    });
  }

  async markPublished(tx: Tx, id: string, at: Date): Promise<void> {
    await tx.grantEvent.update({ where: { id }, data: { publishedAt: at } });
  }
}
