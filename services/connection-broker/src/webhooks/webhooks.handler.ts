import { RpcHandler } from '@context-gateway/messaging';
import {
  type ConfigureWebhookRequest,
  type ListWebhookMessagesRequest,
  type ReplayWebhookMessageRequest,
  type RotateWebhookSecretRequest,
  rpc,
  type WebhookRef,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { WebhooksService } from './webhooks.service.js';

/** broker.v1.*_webhook*: the gateway's admin and application routes for webhooks (docs/webhooks.md). */
@Controller()
export class WebhooksHandler {
  constructor(private readonly webhooks: WebhooksService) {}

  @RpcHandler(rpc.broker.configureWebhook)
  configure(@Payload() m: ConfigureWebhookRequest) {
    return this.webhooks.configure(m.orgId, m.applicationId, m.url);
  }

  @RpcHandler(rpc.broker.getWebhook)
  get(@Payload() m: WebhookRef) {
    return this.webhooks.describe(m.orgId, m.applicationId);
  }

  @RpcHandler(rpc.broker.deleteWebhook)
  async remove(@Payload() m: WebhookRef) {
    await this.webhooks.remove(m.orgId, m.applicationId);
    return {};
  }

  @RpcHandler(rpc.broker.rotateWebhookSecret)
  rotate(@Payload() m: RotateWebhookSecretRequest) {
    return this.webhooks.rotate(m.orgId, m.applicationId, m.overlapSeconds);
  }

  @RpcHandler(rpc.broker.listWebhookMessages)
  list(@Payload() m: ListWebhookMessagesRequest) {
    return this.webhooks.list(m.orgId, m.applicationId, m.limit, m.cursor);
  }

  @RpcHandler(rpc.broker.replayWebhookMessage)
  replay(@Payload() m: ReplayWebhookMessageRequest) {
    return this.webhooks.replay(m.orgId, m.applicationId, m.messageId);
  }
}
