import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';

import type { Env } from '../env.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { checkEndpointUrl, type EndpointPolicy } from './webhook-sender.js';
import { formatSecret, newSecretKey } from './webhook-signature.js';
import { type WebhookEndpoint, type WebhookMessage, WebhooksRepository } from './webhooks.repository.js';

/** How long a rotated-out secret keeps signing beside the new one, unless asked otherwise. */
const DEFAULT_OVERLAP_SECONDS = 24 * 3600;

/** The context a signing key is wrapped under: it opens for this application only. */
export const secretContext = (applicationId: string) => ({ purpose: 'webhook_secret', applicationId });

/**
 * An application's webhook endpoint: configure, read, rotate its secret, delete; and the
 * delivery log with replay. Every call names the organization, and an application of another
 * organization is not_found, exactly like one that has no endpoint.
 */
@Injectable()
export class WebhooksService {
  readonly policy: EndpointPolicy;

  constructor(
    private readonly repo: WebhooksRepository,
    private readonly vault: CredentialVault,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Env,
  ) {
    this.policy = { allowHttp: env.WEBHOOK_ALLOW_HTTP, allowPrivateNetworks: env.WEBHOOK_ALLOW_PRIVATE_NETWORKS };
  }

  async configure(orgId: string, applicationId: string, rawUrl: string) {
    const url = checkEndpointUrl(rawUrl, this.policy).href;
    const existing = await this.repo.endpoint(applicationId);
    if (existing && existing.orgId !== orgId) throw new AppError('not_found', 'No such application');
    const now = this.clock.date();
    if (existing)
      return { endpoint: toEndpoint(await this.repo.updateEndpoint(applicationId, { url, updatedAt: now })) };
    const key = newSecretKey();
    try {
      const endpoint = await this.repo.upsertEndpoint(
        applicationId,
        {
          orgId,
          url,
          secretWrapped: new Uint8Array(await this.vault.sealSecret(key, secretContext(applicationId))),
          secretCreatedAt: now,
          previousSecretWrapped: null,
          previousSecretExpiresAt: null,
          createdAt: now,
          updatedAt: now,
        },
        { url, updatedAt: now },
      );
      // Two first configurations raced: the loser's key was not stored, so it must not be shown.
      const stored = await this.vault.openSecret(endpoint.secretWrapped, secretContext(applicationId));
      const secret = stored.equals(key) ? formatSecret(key) : '';
      stored.fill(0);
      return { endpoint: toEndpoint(endpoint), secret };
    } finally {
      key.fill(0);
    }
  }

  async describe(orgId: string, applicationId: string) {
    return { endpoint: toEndpoint(await this.get(orgId, applicationId)) };
  }

  private async get(orgId: string, applicationId: string): Promise<WebhookEndpoint> {
    const endpoint = await this.repo.endpoint(applicationId);
    if (!endpoint || endpoint.orgId !== orgId)
      throw new AppError('not_found', 'This application has no webhook endpoint');
    return endpoint;
  }

  async remove(orgId: string, applicationId: string): Promise<void> {
    await this.get(orgId, applicationId);
    await this.repo.deleteEndpoint(applicationId);
  }

  async rotate(orgId: string, applicationId: string, overlapSeconds: number) {
    const current = await this.get(orgId, applicationId);
    const now = this.clock.date();
    const key = newSecretKey();
    try {
      const endpoint = await this.repo.updateEndpoint(applicationId, {
        secretWrapped: new Uint8Array(await this.vault.sealSecret(key, secretContext(applicationId))),
        secretCreatedAt: now,
        previousSecretWrapped: current.secretWrapped,
        previousSecretExpiresAt: new Date(now.getTime() + (overlapSeconds || DEFAULT_OVERLAP_SECONDS) * 1000),
        updatedAt: now,
      });
      return { endpoint: toEndpoint(endpoint), secret: formatSecret(key) };
    } finally {
      key.fill(0);
    }
  }

  async list(orgId: string, applicationId: string, limit: number, cursor: string) {
    await this.get(orgId, applicationId);
    let before: bigint | undefined;
    if (cursor !== '') {
      if (!/^\d{1,19}$/.test(cursor)) throw new AppError('validation_failed', 'The cursor is not one this API gave');
      before = BigInt(cursor);
    }
    const rows = await this.repo.listMessages(applicationId, limit + 1, before);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      messages: page.map(toMessage),
      nextCursor: rows.length > limit && last ? last.seq.toString() : '',
    };
  }

  async replay(orgId: string, applicationId: string, messageId: string) {
    await this.get(orgId, applicationId);
    const message = await this.repo.message(applicationId, messageId);
    if (!message) throw new AppError('not_found', 'No such webhook message');
    return { message: toMessage(await this.repo.replay(message.id, this.clock.date())) };
  }
}

function toEndpoint(e: WebhookEndpoint) {
  return {
    applicationId: e.applicationId,
    orgId: e.orgId,
    url: e.url,
    createdAt: timestampFromDate(e.createdAt),
    secretCreatedAt: timestampFromDate(e.secretCreatedAt),
    ...(e.previousSecretExpiresAt ? { previousSecretExpiresAt: timestampFromDate(e.previousSecretExpiresAt) } : {}),
  };
}

function toMessage(m: WebhookMessage) {
  return {
    id: m.id,
    type: m.type,
    connectionId: m.connectionId ?? '',
    status: m.status,
    attempts: m.attempts,
    createdAt: timestampFromDate(m.createdAt),
    ...(m.status === 'pending' ? { nextAttemptAt: timestampFromDate(m.nextAttemptAt) } : {}),
    ...(m.deliveredAt ? { deliveredAt: timestampFromDate(m.deliveredAt) } : {}),
    lastStatus: m.lastStatus ?? 0,
    lastError: m.lastError ?? '',
    payloadJson: m.payload,
  };
}
