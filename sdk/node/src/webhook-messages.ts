import type { Transport } from './http.js';
import type { WebhookMessage, WebhookMessagesPage } from './types.js';

/**
 * Your application's webhook delivery log (docs/webhooks.md): every message queued for your
 * endpoint with its status, attempts and the body as sent; and replay. To receive deliveries,
 * verify each with `Webhook` (Standard Webhooks signatures) and de-duplicate by `webhook-id`.
 */
export class WebhookMessagesClient {
  constructor(private readonly http: Transport) {}

  /** One page, newest first. */
  list(options: { limit?: number; cursor?: string } = {}): Promise<WebhookMessagesPage> {
    return this.http.request<WebhookMessagesPage>({
      method: 'GET',
      path: '/v1/webhook/messages',
      query: { limit: options.limit, cursor: options.cursor },
    });
  }

  /** Every message, newest first, following `nextCursor`. */
  async *iterate(options: { pageSize?: number } = {}): AsyncGenerator<WebhookMessage, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ limit: options.pageSize ?? 100, cursor });
      yield* page.messages;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** Delivers the message again now, with the same `webhook-id`. */
  replay(messageId: string): Promise<WebhookMessage> {
    return this.http.request<WebhookMessage>({
      method: 'POST',
      path: `/v1/webhook/messages/${encodeURIComponent(messageId)}/replay`,
    });
  }
}
