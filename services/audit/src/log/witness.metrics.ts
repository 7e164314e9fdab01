import { type Counter, Metrics, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';

import type { Env } from '../env.js';

/** What became of one submission to the witness. */
export type WitnessOutcome = 'cosigned' | 'unreachable' | 'refused' | 'ahead';

/**
 * The witness's view of the log (docs/audit.md, "Witness"): submissions by outcome, and how
 * many signed entries the witness has not cosigned yet, read from the database at scrape
 * time so it keeps growing while nothing is submitted. `refused` (the witness would not
 * cosign the log's own checkpoint) and `ahead` (it holds more than the log) are evidence of
 * a rewritten or cut log, not outages.
 */
@Injectable()
export class WitnessMetrics {
  private readonly submissions: Counter;

  constructor(
    metrics: Metrics,
    @Inject(PG_POOL) pool: Pick<Pool, 'query'>,
    @Inject(SERVICE_ENV) env: Pick<Env, 'AUDIT_WITNESS_URL'>,
  ) {
    const witnessed = env.AUDIT_WITNESS_URL !== undefined;
    this.submissions = metrics.counter({
      name: 'audit_witness_submissions_total',
      help: 'Checkpoints submitted to the witness, by outcome (cosigned, unreachable, refused, ahead).',
      labelNames: ['outcome'],
    });
    metrics.gauge({
      name: 'audit_witness_lag_entries',
      help: 'Entries covered by the newest signed checkpoint but not by a witness cosignature (0 without a witness).',
      async collect() {
        if (!witnessed) return this.set(0);
        const { rows } = await pool.query<{ lag: string | null }>(
          `SELECT ((SELECT coalesce(max(tree_size), 0) FROM checkpoints)
                 - (SELECT coalesce(max(tree_size), 0) FROM witness_cosignatures))::text AS lag`,
        );
        this.set(Math.max(0, Number(rows[0]?.lag ?? 0)));
      },
    });
  }

  submitted(outcome: WitnessOutcome): void {
    this.submissions.inc({ outcome });
  }
}
