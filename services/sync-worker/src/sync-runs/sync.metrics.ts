import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { type SyncJob, SyncReason } from '@context-gateway/proto';
import { type Counter, type Histogram, Metrics, PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';

import type { JobOutcome } from './sync-runs.service.js';

/** Seconds from a job being requested to its data being written: seconds for a webhook, up to hours behind a backlog. */
const LAG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600];

/**
 * Sync freshness and failures. Per-connection labels would be a series per connection
 * (unbounded), so lag is a histogram over all runs plus one gauge for the worst case, and
 * failures are counted by AppError code. Which connection is behind is in the logs and
 * `sync.v1.get_state`, not here.
 */
@Injectable()
export class SyncMetrics {
  private readonly lag: Histogram<'reason'>;
  private readonly runs: Counter<'outcome'>;
  private readonly failures: Counter<'reason'>;

  constructor(
    metrics: Metrics,
    @Inject(PG_POOL) pool: Pick<Pool, 'query'>,
    private readonly clock: Clock,
  ) {
    this.lag = metrics.histogram({
      name: 'sync_lag_seconds',
      help: 'From a sync job being requested to its run committing, by why the job was queued (INITIAL, MANUAL, WEBHOOK, SCHEDULED).',
      labelNames: ['reason'],
      buckets: LAG_BUCKETS,
    });
    this.runs = metrics.counter({
      name: 'sync_runs_total',
      help: 'Sync jobs finished by this worker, by outcome (synced, coalesced, needs_reauth, awaiting_import, connection_removed, failed).',
      labelNames: ['outcome'],
    });
    this.failures = metrics.counter({
      name: 'sync_failures_total',
      help: 'Sync runs that failed, by reason (the AppError code: source_unavailable, rate_limited, connection_needs_reauth, ...).',
      labelNames: ['reason'],
    });
    metrics.gauge({
      name: 'sync_oldest_lag_seconds',
      help: 'How far past its next_run_at the most overdue connection waiting to sync is (0 when none is overdue). Read from the database at scrape time: every worker reports the same value, aggregate with max.',
      async collect() {
        // The database's clock on both sides of the subtraction: next_run_at was written against it.
        const { rows } = await pool.query<{ seconds: number | null }>(
          `SELECT extract(epoch FROM now() - min(next_run_at))::float8 AS seconds
             FROM sync_states WHERE state IN ('idle', 'queued') AND next_run_at < now()`,
        );
        this.set(Math.max(0, rows[0]?.seconds ?? 0));
      },
    });
  }

  /** Runs one job through `run`, recording its outcome, its lag when it synced, and its failure reason when it threw. */
  async observe(job: Pick<SyncJob, 'reason' | 'requestedAt'>, run: () => Promise<JobOutcome>): Promise<JobOutcome> {
    try {
      const outcome = await run();
      this.runs.inc({ outcome });
      if (outcome === 'needs_reauth') this.failures.inc({ reason: 'connection_needs_reauth' });
      if (outcome === 'synced' && job.requestedAt) {
        const requestedMs = Number(job.requestedAt.seconds) * 1000 + job.requestedAt.nanos / 1e6;
        this.lag.observe(
          { reason: SyncReason[job.reason] ?? 'UNKNOWN' },
          Math.max(0, this.clock.now() - requestedMs) / 1000,
        );
      }
      return outcome;
    } catch (error) {
      this.runs.inc({ outcome: 'failed' });
      this.failures.inc({ reason: AppError.from(error).code });
      throw error;
    }
  }
}
