import { createHmac, randomUUID } from 'node:crypto';

import type { Counters } from './counters.js';

export interface WebhookConfig {
  url: string;
  /** HMAC-SHA256 key for X-Hub-Signature-256. */
  secret: string;
  /** Event names to deliver (unset = all). */
  events?: string[];
}

export interface WebhookDelivery {
  id: string;
  event: string;
  action: string | undefined;
  status: number | undefined;
  error: string | undefined;
  deliveredAt: string;
}

/**
 * GitHub-style webhook deliveries: one configured endpoint (like a GitHub App's), signed
 * JSON POSTs sent in the background after a change, and a log of outcomes for tests.
 */
export class Webhooks {
  config: WebhookConfig | undefined;
  readonly deliveries: WebhookDelivery[] = [];
  private hookId = 1;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly counters: Counters,
    private readonly userAgent: string,
  ) {}

  configure(config: WebhookConfig | undefined): void {
    this.config = config;
    this.hookId++;
  }

  get hookIdentifier(): number {
    return this.hookId;
  }

  /** Sends without waiting (the source's delivery is asynchronous); `settled()` waits. */
  emit(event: string, payload: Record<string, unknown>): void {
    const config = this.config;
    if (!config) return;
    if (config.events && !config.events.includes(event) && event !== 'ping') return;
    const p = this.deliver(config, event, payload).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async settled(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async deliver(config: WebhookConfig, event: string, payload: Record<string, unknown>): Promise<void> {
    const id = randomUUID();
    const body = JSON.stringify(payload);
    const signature = createHmac('sha256', config.secret).update(body).digest('hex');
    const delivery: WebhookDelivery = {
      id,
      event,
      action: typeof payload.action === 'string' ? payload.action : undefined,
      status: undefined,
      error: undefined,
      deliveredAt: new Date().toISOString(),
    };
    try {
      const res = await fetch(config.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': this.userAgent,
          'x-github-event': event,
          'x-github-delivery': id,
          'x-github-hook-id': String(this.hookId),
          'x-hub-signature-256': `sha256=${signature}`,
          // The legacy SHA-1 signature GitHub still sends alongside.
          'x-hub-signature': `sha1=${createHmac('sha1', config.secret).update(body).digest('hex')}`,
        },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      delivery.status = res.status;
      if (res.ok) this.counters.webhooksDelivered++;
      else this.counters.webhooksFailed++;
    } catch (err) {
      delivery.error = (err as Error).message;
      this.counters.webhooksFailed++;
    }
    this.deliveries.push(delivery);
    if (this.deliveries.length > 1000) this.deliveries.shift();
  }
}
