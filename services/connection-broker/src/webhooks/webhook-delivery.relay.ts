import { randomInt } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { deliver, type DeliveryResult } from './webhook-sender.js';
import { signature } from './webhook-signature.js';
import { WebhooksMetrics } from './webhooks.metrics.js';
import { type WebhookEndpoint, type WebhookMessage, WebhooksRepository } from './webhooks.repository.js';
import { secretContext } from './webhooks.service.js';

/** Messages leased per round; each is one POST, sent concurrently. */
const BATCH = 20;

/**
 * Delivers the webhook queue: leases due messages (one per application and connection at a
 * time, in order), signs each with the endpoint's secret(s) per Standard Webhooks, POSTs it,
 * and records the outcome. A failure is retried with exponential backoff and full jitter
 * (WEBHOOK_RETRY_BASE_MS doubling, capped at WEBHOOK_RETRY_MAX_MS) until
 * WEBHOOK_MAX_ATTEMPTS, then the message is `failed` (a replay sends it again). At least
 * once: a receiver de-duplicates by `webhook-id`, which never changes for a message.
 */
@Injectable()
export class WebhookDeliveryRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(
    private readonly repo: WebhooksRepository,
    private readonly vault: CredentialVault,
    private readonly metrics: WebhooksMetrics,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#round = this.deliverDue()
        .catch((error: unknown) =>
          this.logger.warn({ code: AppError.from(error).code }, 'webhook delivery round failed; retrying'),
        )
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.env.WEBHOOK_POLL_MS).unref();
        });
    };
    tick();
  }

  async onApplicationShutdown(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
  }

  /** One round: every due message leased now is attempted once. Returns how many were attempted. */
  async deliverDue(): Promise<number> {
    const now = this.clock.date();
    // The lease outlasts one attempt: another replica takes a message only if this one died.
    const leased = await this.repo.leaseDue(now, BATCH, this.env.WEBHOOK_TIMEOUT_MS * 3);
    await Promise.all(leased.map((m) => this.attempt(m, m.endpoint)));
    return leased.length;
  }

  private async attempt(message: WebhookMessage, endpoint: WebhookEndpoint): Promise<void> {
    const started = performance.now();
    let result: DeliveryResult;
    try {
      const timestamp = Math.floor(this.clock.now() / 1000);
      const signatures = await this.signatures(endpoint, message, timestamp);
      result = await deliver(
        new URL(endpoint.url),
        {
          'webhook-id': message.id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signatures.join(' '),
          'user-agent': 'ContextGateway-Webhooks/1',
        },
        message.payload,
        { timeoutMs: this.env.WEBHOOK_TIMEOUT_MS, policy: this.policy },
      );
    } catch (error) {
      result = { status: 0, error: AppError.from(error).code };
    }
    this.metrics.deliveryDuration.observe((performance.now() - started) / 1000);
    const attempts = message.attempts + 1;
    if (!result.error) {
      await this.repo.delivered(message.id, result.status, this.clock.date());
      this.metrics.attempts.inc({ outcome: 'delivered' });
      this.logger.info({ webhookId: message.id, type: message.type, attempts }, 'webhook delivered');
      return;
    }
    const giveUp = attempts >= this.env.WEBHOOK_MAX_ATTEMPTS;
    await this.repo.attemptFailed(message.id, {
      status: result.status,
      error: result.error,
      nextAttemptAt: giveUp ? null : new Date(this.clock.now() + this.backoffMs(attempts)),
    });
    this.metrics.attempts.inc({ outcome: giveUp ? 'given_up' : 'retried' });
    // The endpoint's URL is the application's; its answer's body is never read into the log.
    this.logger.warn(
      { webhookId: message.id, type: message.type, attempts, status: result.status, error: result.error, giveUp },
      giveUp ? 'webhook given up after its last attempt' : 'webhook attempt failed; will retry',
    );
  }

  private get policy() {
    return { allowHttp: this.env.WEBHOOK_ALLOW_HTTP, allowPrivateNetworks: this.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS };
  }

  /** Full jitter over an exponential ceiling: retries of many messages do not arrive together. */
  private backoffMs(attempts: number): number {
    const ceiling = Math.min(this.env.WEBHOOK_RETRY_MAX_MS, this.env.WEBHOOK_RETRY_BASE_MS * 2 ** (attempts - 1));
    return Math.max(this.env.WEBHOOK_RETRY_BASE_MS / 2, randomInt(0, Math.max(1, Math.floor(ceiling)) + 1));
  }

  /** The current secret's signature, and the previous secret's while a rotation overlaps. */
  private async signatures(endpoint: WebhookEndpoint, message: WebhookMessage, timestamp: number): Promise<string[]> {
    const context = secretContext(endpoint.applicationId);
    const wrapped = [endpoint.secretWrapped];
    if (
      endpoint.previousSecretWrapped &&
      endpoint.previousSecretExpiresAt &&
      endpoint.previousSecretExpiresAt.getTime() > this.clock.now()
    )
      wrapped.push(endpoint.previousSecretWrapped);
    const out: string[] = [];
    for (const w of wrapped) {
      const key = await this.vault.openSecret(w, context);
      try {
        out.push(signature(key, message.id, timestamp, message.payload));
      } finally {
        key.fill(0);
      }
    }
    return out;
  }
}
