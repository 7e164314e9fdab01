import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { Prisma } from '../generated/prisma/client.js';

/** One stored oidc-provider object, as the provider hands it over and gets it back. */
export interface StoredPayload {
  payload: Record<string, unknown>;
  consumedAt: Date | null;
  expiresAt: Date | null;
}

/**
 * oidc-provider's state in `oauth_payloads`, one row per (model, id). Thin: the rules
 * (expiry, single use, grant revocation) are the adapter's and the provider's.
 */
@Injectable()
export class OAuthStoreRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  async upsert(
    model: string,
    id: string,
    payload: Record<string, unknown>,
    index: { grantId?: string; uid?: string; userCode?: string },
    expiresAt: Date | null,
  ): Promise<void> {
    const data = {
      payload: payload as Prisma.InputJsonValue,
      grantId: index.grantId ?? null,
      uid: index.uid ?? null,
      userCode: index.userCode ?? null,
      expiresAt,
    };
    await this.db.oAuthPayload.upsert({
      where: { model_id: { model, id } },
      create: { model, id, ...data },
      update: data,
    });
  }

  find(model: string, where: { id: string } | { uid: string } | { userCode: string }): Promise<StoredPayload | null> {
    return this.db.oAuthPayload.findFirst({
      where: { model, ...where },
      select: { payload: true, consumedAt: true, expiresAt: true },
    }) as Promise<StoredPayload | null>;
  }

  /**
   * Marks a code or refresh token spent. True only for the one caller that spent it:
   * the compare-and-set is what makes two concurrent redemptions of one code impossible.
   */
  async consume(model: string, id: string, now: Date): Promise<boolean> {
    const { count } = await this.db.oAuthPayload.updateMany({
      where: { model, id, consumedAt: null },
      data: { consumedAt: now },
    });
    return count === 1;
  }

  /** The grant a stored object belongs to (for reuse detection on a lost consume race). */
  async grantIdOf(model: string, id: string): Promise<string | null> {
    const row = await this.db.oAuthPayload.findUnique({
      where: { model_id: { model, id } },
      select: { grantId: true },
    });
    return row?.grantId ?? null;
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.db.oAuthPayload.deleteMany({ where: { model, id } });
  }

  /**
   * Everything issued under one grant, whatever its model, and the grant itself: a
   * revoked grant leaves no code or refresh token behind.
   */
  /**
   * Records that `id` was used, until `expiresAt` (then pruned with the rest); false when it
   * already was. One INSERT ... ON CONFLICT DO NOTHING: two racing uses cannot both win.
   */
  async useOnce(model: string, id: string, expiresAt: Date): Promise<boolean> {
    const { count } = await this.db.oAuthPayload.createMany({
      data: [{ model, id, payload: {}, expiresAt }],
      skipDuplicates: true,
    });
    return count === 1;
  }

  async revokeByGrantId(grantId: string, tx: Tx = this.db): Promise<number> {
    const { count } = await tx.oAuthPayload.deleteMany({
      where: { OR: [{ grantId }, { model: 'Grant', id: grantId }] },
    });
    return count;
  }

  /** Removes rows expired for over `graceMs`; returns how many. */
  async pruneExpired(now: Date, graceMs: number): Promise<number> {
    const before = new Date(now.getTime() - graceMs);
    const { count } = await this.db.oAuthPayload.deleteMany({ where: { expiresAt: { lt: before } } });
    // Metadata-URL grants' bindings end with their grants.
    await this.db.oAuthGrantApplication.deleteMany({ where: { expiresAt: { lt: before } } });
    return count;
  }
}
