import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { toEndpoint, toMessage } from './webhooks.schemas.js';

/** The gateway's side of webhooks: the broker keeps endpoints and the queue; identity says which org an app is in. */
@Injectable()
export class WebhooksService {
  constructor(private readonly rpcClient: RpcClient) {}

  /** not_found unless the application is in the organization (an operator's typo must not configure another org's app). */
  private async inOrg(orgId: string, applicationId: string): Promise<void> {
    await this.rpcClient.request(rpc.identity.getApplication, { orgId, applicationId });
  }

  async configure(orgId: string, applicationId: string, url: string) {
    await this.inOrg(orgId, applicationId);
    const r = await this.rpcClient.request(rpc.broker.configureWebhook, { orgId, applicationId, url });
    return toEndpoint(r.endpoint, r.secret || undefined);
  }

  async get(orgId: string, applicationId: string) {
    await this.inOrg(orgId, applicationId);
    return toEndpoint((await this.rpcClient.request(rpc.broker.getWebhook, { orgId, applicationId })).endpoint);
  }

  async remove(orgId: string, applicationId: string) {
    await this.inOrg(orgId, applicationId);
    await this.rpcClient.request(rpc.broker.deleteWebhook, { orgId, applicationId });
    return { deleted: true as const };
  }

  async rotate(orgId: string, applicationId: string, overlapSeconds: number | undefined) {
    await this.inOrg(orgId, applicationId);
    const r = await this.rpcClient.request(rpc.broker.rotateWebhookSecret, {
      orgId,
      applicationId,
      overlapSeconds: overlapSeconds ?? 0,
    });
    return toEndpoint(r.endpoint, r.secret);
  }

  /** The application's own delivery log (an API key's application: no org lookup needed). */
  async messages(orgId: string, applicationId: string, limit: number, cursor: string | undefined) {
    const r = await this.rpcClient.request(rpc.broker.listWebhookMessages, {
      orgId,
      applicationId,
      limit,
      cursor: cursor ?? '',
    });
    return { messages: r.messages.map(toMessage), nextCursor: r.nextCursor || null };
  }

  async replay(orgId: string, applicationId: string, messageId: string) {
    const r = await this.rpcClient.request(rpc.broker.replayWebhookMessage, { orgId, applicationId, messageId });
    if (!r.message) throw new Error('the broker answered a replay without its message');
    return toMessage(r.message);
  }
}
