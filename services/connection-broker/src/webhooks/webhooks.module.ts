import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { SyncEventsConsumer } from './sync-events.consumer.js';
import { WebhookDeliveryRelay } from './webhook-delivery.relay.js';
import { WebhookOutboxModule } from './webhook-outbox.js';
import { WebhooksHandler } from './webhooks.handler.js';
import { WebhooksMetrics } from './webhooks.metrics.js';
import { WebhooksRepository } from './webhooks.repository.js';
import { WebhooksService } from './webhooks.service.js';

/**
 * Webhooks to applications (docs/webhooks.md): endpoints and their secrets, the durable
 * queue's delivery, sync outcomes from SYNC_EVENTS. Events are queued by the contexts where
 * they happen, through WebhookOutbox, in their own transactions.
 */
@Module({
  imports: [ConnectionsModule, WebhookOutboxModule],
  controllers: [WebhooksHandler],
  providers: [WebhooksRepository, WebhooksService, WebhooksMetrics, WebhookDeliveryRelay, SyncEventsConsumer],
})
export class WebhooksModule {}
