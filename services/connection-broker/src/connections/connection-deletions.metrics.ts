import { Metrics } from '@context-gateway/service-kit';
import { Injectable } from '@nestjs/common';

import { ConnectionDeletionsRepository } from './connection-deletions.repository.js';

/**
 * Deletions the Personal Server has not confirmed yet (connections shown as `deleting`), read
 * from the outbox at scrape time: they keep growing while no shard answers, whatever the
 * relay reports. Every replica reports the same values; aggregate with max. An alert on the
 * oldest (deploy/monitoring/alerts.yaml) says when records of a deleted connection have been
 * waiting too long to be destroyed.
 */
@Injectable()
export class ConnectionDeletionsMetrics {
  constructor(metrics: Metrics, outbox: ConnectionDeletionsRepository) {
    // One query for both gauges per scrape; the second collect reuses the first's answer.
    let pending: Promise<{ pending: number; oldestSeconds: number }> | undefined;
    const read = () =>
      (pending ??= outbox.pendingStats().finally(() => setTimeout(() => (pending = undefined), 1_000).unref()));
    metrics.gauge({
      name: 'connection_deletions_pending',
      help: 'Deleted connections whose records the Personal Server has not yet confirmed destroying.',
      async collect() {
        this.set((await read()).pending);
      },
    });
    metrics.gauge({
      name: 'connection_deletion_oldest_pending_seconds',
      help: 'How long the oldest unconfirmed connection deletion has been waiting (0 when none).',
      async collect() {
        this.set((await read()).oldestSeconds);
      },
    });
  }
}
