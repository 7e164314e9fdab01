import { Clock } from '@context-gateway/clock';
import { type Counter, type Histogram, Metrics } from '@context-gateway/service-kit';
import { Injectable } from '@nestjs/common';

import { WebhooksRepository } from './webhooks.repository.js';

/**
 * Webhook deliveries: attempts by outcome and their duration (per replica), and the queue
 * read at scrape time (every replica reports the same; aggregate with max). The alert
 * ContextGatewayWebhooksBacklog (deploy/monitoring/alerts.yaml) fires on the oldest.
 */
@Injectable()
export class WebhooksMetrics {
  readonly attempts: Counter<'outcome'>;
  readonly deliveryDuration: Histogram;

  constructor(metrics: Metrics, repo: WebhooksRepository, clock: Clock) {
    this.attempts = metrics.counter({
      name: 'webhook_delivery_attempts_total',
      help: 'Webhook delivery attempts by outcome: delivered, retried (failed, will retry), given_up.',
      labelNames: ['outcome'],
    });
    this.deliveryDuration = metrics.histogram({
      name: 'webhook_delivery_duration_seconds',
      help: 'How long one webhook delivery attempt took, answer or not.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    let read: Promise<{ pending: number; oldestSeconds: number }> | undefined;
    const backlog = () =>
      (read ??= repo.backlog(clock.date()).finally(() => setTimeout(() => (read = undefined), 1_000).unref()));
    metrics.gauge({
      name: 'webhook_messages_pending',
      help: 'Webhook messages waiting to be delivered (including those between retries).',
      async collect() {
        this.set((await backlog()).pending);
      },
    });
    metrics.gauge({
      name: 'webhook_oldest_pending_seconds',
      help: 'Age of the oldest webhook message not yet delivered (0 when none).',
      async collect() {
        this.set((await backlog()).oldestSeconds);
      },
    });
  }
}
