import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { ApplicationsService } from '../applications/applications.service.js';
import type { ApiKey } from '../generated/prisma/client.js';
import { TokenRevocationEvents, TokenRevocationKind } from '../oauth/token-revocation-events.js';
import { hasSecretShape, newSecret, sha256 } from '../secrets.js';
import { ApiKeysRepository } from './api-keys.repository.js';

const API_KEY_PREFIX = 'cg_sk_';
/** The displayed part: `cg_sk_` and 8 characters (48 bits: recognisable, useless for guessing the rest). */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;
/** last_used_at is accurate to this much; finer would mean a write on every API call. */
const TOUCH_INTERVAL_MS = 60_000;

export interface AuthenticatedKey {
  orgId: string;
  applicationId: string;
  apiKeyId: string;
}

@Injectable()
export class ApiKeysService {
  /** key id → when this process last wrote its last_used_at (bounded; cleared when large). */
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly keys: ApiKeysRepository,
    private readonly applications: ApplicationsService,
    private readonly revocations: TokenRevocationEvents,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  /** Issues a key: the whole secret is returned this once; only its SHA-256 is stored. */
  async issue(applicationId: string): Promise<{ key: ApiKey; secret: string }> {
    const app = await this.applications.get(applicationId);
    const secret = newSecret(API_KEY_PREFIX);
    const key = await this.keys.create({
      orgId: app.orgId,
      applicationId: app.id,
      secretHash: sha256(secret),
      prefix: secret.slice(0, DISPLAY_PREFIX_LENGTH),
    });
    return { key, secret };
  }

  /**
   * Revokes a key. Idempotent: revoking a revoked key returns it unchanged (and tells the
   * gateways again). Once this returns, the row says revoked and every gateway has been told
   * (`tokens_revoked`, kind API_KEY, on the CONTROL stream, which each gateway reads up to
   * date before it trusts a remembered key): the very next request with the key fails. When
   * the event cannot be published this throws, so the caller retries instead of believing it.
   */
  async revoke(applicationId: string, apiKeyId: string): Promise<ApiKey> {
    const key = await this.revocations.revoke(
      async (tx) => {
        await this.keys.revoke(applicationId, apiKeyId, this.clock.date(), tx);
        return this.keys.findInApplication(applicationId, apiKeyId, tx);
      },
      (revoked) =>
        revoked ? { orgId: revoked.orgId, kind: TokenRevocationKind.API_KEY, subjectId: revoked.id } : undefined,
    );
    if (!key) throw new AppError('not_found', 'No such API key');
    return key;
  }

  async list(applicationId: string): Promise<ApiKey[]> {
    await this.applications.get(applicationId);
    return this.keys.listInApplication(applicationId);
  }

  /**
   * The gateway's per-request check. Every failure is the same `unauthenticated`, so a
   * caller learns nothing about which keys exist or were revoked.
   */
  async authenticate(presented: string): Promise<AuthenticatedKey> {
    const refused = new AppError('unauthenticated', 'The API key is not valid');
    if (!hasSecretShape(presented, API_KEY_PREFIX)) throw refused;
    const key = await this.keys.findByHash(sha256(presented));
    if (!key || key.revokedAt || key.application.status !== 'active') throw refused;
    this.noteUse(key.id, this.clock.date());
    return { orgId: key.orgId, applicationId: key.applicationId, apiKeyId: key.id };
  }

  private noteUse(id: string, now: Date): void {
    const last = this.touched.get(id);
    if (last !== undefined && now.getTime() - last < TOUCH_INTERVAL_MS) return;
    if (this.touched.size > 10_000) this.touched.clear();
    this.touched.set(id, now.getTime());
    // Off the request path: a lost last_used_at update is not worth a failed call.
    this.keys
      .touch(id, now, TOUCH_INTERVAL_MS)
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'api key last_used_at not updated'));
  }
}
