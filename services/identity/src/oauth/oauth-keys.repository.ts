import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { OAuthKey, Prisma } from '../generated/prisma/client.js';

/** Arbitrary, fixed: serializes key creation and rotation across identity replicas. */
const KEYS_LOCK = 0x6f61_6b79; // "oaky"

@Injectable()
export class OAuthKeysRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  /** Runs `work` holding a transaction-scoped advisory lock, so two replicas never both create or rotate keys. */
  locked<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction(
      async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEYS_LOCK})`;
        return work(tx);
      },
      // The work only reads and inserts a few rows (keys are generated beforehand); the
      // time also covers waiting for another replica's lock on a busy machine.
      { maxWait: 10_000, timeout: 30_000 },
    );
  }

  /** Live keys of one use, newest first (the provider signs with the first of each algorithm). */
  live(use: 'sig' | 'cookie', tx: Tx = this.db): Promise<OAuthKey[]> {
    return tx.oAuthKey.findMany({ where: { use, retiredAt: null }, orderBy: [{ createdAt: 'desc' }, { kid: 'asc' }] });
  }

  create(
    data: {
      kid: string;
      use: 'sig' | 'cookie';
      alg: string;
      publicJwk: Prisma.InputJsonValue | null;
      wrappedDataKey: Uint8Array<ArrayBuffer>;
      ciphertext: Uint8Array<ArrayBuffer>;
      createdAt: Date;
    },
    tx: Tx = this.db,
  ): Promise<OAuthKey> {
    const { publicJwk, ...rest } = data;
    return tx.oAuthKey.create({ data: { ...rest, ...(publicJwk === null ? {} : { publicJwk }) } });
  }

  async retire(kids: string[], now: Date, tx: Tx = this.db): Promise<number> {
    if (kids.length === 0) return 0;
    const { count } = await tx.oAuthKey.updateMany({
      where: { kid: { in: kids }, retiredAt: null },
      data: { retiredAt: now },
    });
    return count;
  }

  count(tx: Tx = this.db): Promise<number> {
    return tx.oAuthKey.count();
  }
}
