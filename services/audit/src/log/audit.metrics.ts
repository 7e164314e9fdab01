import { Clock } from '@context-gateway/clock';
import { type PendingSampler, samplePending } from '@context-gateway/messaging';
import { consumers, streams } from '@context-gateway/proto';
import { type Counter, type Histogram, Metrics, NATS_CONNECTION, PG_POOL } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';

/** The durable consumer the log writer pulls AUDIT with (log-writer.service.ts). */
const AUDIT_CONSUMER = consumers.auditLogWriter.durable;
/** Seconds from an event happening at the gateway to its entry being committed in the log. */
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/**
 * How far the audit log is behind what happened, and how long its newest entries have gone
 * unsigned. Checkpoint age and unsigned entries are read from the database at scrape time,
 * so they keep growing when no writer runs at all (a dead writer reports nothing itself);
 * every replica reports the same values, aggregate with max.
 */
@Injectable()
export class AuditMetrics implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly lag: Histogram;
  private readonly appendedTotal: Counter;
  private sampler: PendingSampler | undefined;

  constructor(
    private readonly metrics: Metrics,
    @Inject(PG_POOL) pool: Pick<Pool, 'query'>,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    private readonly clock: Clock,
  ) {
    this.lag = metrics.histogram({
      name: 'audit_append_lag_seconds',
      help: "From an event's occurred_at to its log entry being committed.",
      buckets: LAG_BUCKETS,
    });
    this.appendedTotal = metrics.counter({
      name: 'audit_entries_appended_total',
      help: 'Entries appended to the log by this instance (duplicates not counted).',
    });
    // One query for both gauges per scrape; the second collect reuses the first's answer.
    let pending: Promise<{ age: number; unsigned: number }> | undefined;
    const read = () =>
      (pending ??= pool
        .query<{ age: number | null; unsigned: string | null }>(
          `SELECT extract(epoch FROM now() - (SELECT max(created_at) FROM checkpoints))::float8 AS age,
                  ((SELECT coalesce(max(seq) + 1, 0) FROM audit_entries)
                    - (SELECT coalesce(max(tree_size), 0) FROM checkpoints))::text AS unsigned`,
        )
        .then(({ rows }) => ({ age: rows[0]?.age ?? 0, unsigned: Number(rows[0]?.unsigned ?? 0) }))
        .finally(() => setTimeout(() => (pending = undefined), 1_000).unref()));
    metrics.gauge({
      name: 'audit_checkpoint_age_seconds',
      help: 'Age of the newest signed checkpoint (0 before the first one).',
      async collect() {
        this.set(Math.max(0, (await read()).age));
      },
    });
    metrics.gauge({
      name: 'audit_unsigned_entries',
      help: 'Entries appended after the newest signed checkpoint: not yet covered by a signature.',
      async collect() {
        this.set(Math.max(0, (await read()).unsigned));
      },
    });
  }

  /** The AUDIT backlog (jetstream_consumer_pending) is sampled here: the writer pulls on its own, not through consumeEvents. */
  onApplicationBootstrap(): void {
    this.sampler = samplePending(this.nc, streams.audit.name, AUDIT_CONSUMER, this.metrics.messaging);
  }

  onApplicationShutdown(): void {
    this.sampler?.stop();
  }

  /** After a batch committed: its entries' lag from when they happened. */
  appended(entries: ReadonlyArray<{ occurredAtMs: number }>): void {
    const now = this.clock.now();
    for (const entry of entries) this.lag.observe(Math.max(0, now - entry.occurredAtMs) / 1000);
    this.appendedTotal.inc(entries.length);
  }
}
