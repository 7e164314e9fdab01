import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { Passkey, Session, User, WebauthnChallenge } from '../generated/prisma/client.js';

/** Users and their passkeys (one aggregate: a passkey never outlives its user). */
@Injectable()
export class UsersRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction((tx) => work(tx));
  }

  createUser(data: { displayName: string; webauthnUserId: string }, tx: Tx = this.db): Promise<User> {
    return tx.user.create({ data });
  }

  findUser(id: string, tx: Tx = this.db): Promise<User | null> {
    return tx.user.findUnique({ where: { id } });
  }

  addPasskey(
    data: {
      userId: string;
      credentialId: string;
      publicKey: Uint8Array<ArrayBuffer>;
      signCount: bigint;
      transports: string[];
      deviceType: string;
      backedUp: boolean;
    },
    tx: Tx = this.db,
  ): Promise<Passkey> {
    return tx.passkey.create({ data });
  }

  listPasskeys(userId: string, tx: Tx = this.db): Promise<Passkey[]> {
    return tx.passkey.findMany({ where: { userId } });
  }

  /**
   * Deletes one of the user's passkeys unless it is their last, in `tx`: the user's passkeys
   * are locked first, so two removals racing cannot leave the account with none.
   * `missing`: no such passkey of this user.
   */
  async removePasskeyUnlessLast(userId: string, passkeyId: string, tx: Tx): Promise<'removed' | 'last' | 'missing'> {
    const rows = await tx.$queryRaw<
      { id: string }[]
    >`SELECT id FROM passkeys WHERE user_id = ${userId}::uuid FOR UPDATE`;
    if (!rows.some((r) => r.id === passkeyId)) return 'missing';
    if (rows.length <= 1) return 'last';
    await tx.passkey.delete({ where: { id: passkeyId } });
    return 'removed';
  }

  /** Names one of the user's passkeys; false when the user has no such passkey. */
  async renamePasskey(userId: string, passkeyId: string, name: string, tx: Tx = this.db): Promise<boolean> {
    const { count } = await tx.passkey.updateMany({ where: { id: passkeyId, userId }, data: { name } });
    return count === 1;
  }

  /** An organization of the user's that requires its SSO (a passkey alone does not sign them in), if any. */
  async ssoRequiredBy(userId: string, tx: Tx = this.db): Promise<string | undefined> {
    const membership = await tx.membership.findFirst({
      where: { userId, organization: { sso: { ssoRequired: true } } },
      select: { orgId: true },
    });
    return membership?.orgId;
  }

  findPasskey(credentialId: string, tx: Tx = this.db): Promise<(Passkey & { user: User }) | null> {
    return tx.passkey.findUnique({ where: { credentialId }, include: { user: true } });
  }

  /**
   * Compare-and-set on the signature counter: only the request that read `expected` can
   * move it to `next`. Two sign-ins racing with the same assertion cannot both win.
   */
  async advanceCounter(id: string, expected: bigint, next: bigint, now: Date, tx: Tx = this.db): Promise<boolean> {
    const { count } = await tx.passkey.updateMany({
      where: { id, signCount: expected },
      data: { signCount: next, lastUsedAt: now },
    });
    return count === 1;
  }
}

/** Passkey ceremonies in progress. */
@Injectable()
export class ChallengesRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(
    data: {
      purpose: string;
      ceremonyTokenHash: string;
      challenge: string;
      userId?: string;
      webauthnUserId?: string;
      displayName?: string;
      newUser?: boolean;
      expiresAt: Date;
    },
    tx: Tx = this.db,
  ): Promise<WebauthnChallenge> {
    return tx.webauthnChallenge.create({ data });
  }

  /**
   * Takes the challenge for good, in one UPDATE: only one caller ever gets it, and only
   * while it is unexpired and for its own purpose. What returns is no longer usable.
   */
  async consume(
    ceremonyTokenHash: string,
    purpose: string,
    now: Date,
    tx: Tx = this.db,
  ): Promise<WebauthnChallenge | undefined> {
    const rows = await tx.webauthnChallenge.updateManyAndReturn({
      where: { ceremonyTokenHash, purpose, consumedAt: null, expiresAt: { gt: now } },
      data: { consumedAt: now },
    });
    return rows[0];
  }

  /** Consumed or expired ceremonies are worthless; keep the table small. */
  async prune(now: Date, tx: Tx = this.db): Promise<number> {
    const { count } = await tx.webauthnChallenge.deleteMany({
      where: { expiresAt: { lt: new Date(now.getTime() - 3_600_000) } },
    });
    return count;
  }
}

@Injectable()
export class SessionsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(
    data: { userId: string; tokenHash: string; createdAt: Date; expiresAt: Date; method: string },
    tx: Tx = this.db,
  ): Promise<Session> {
    return tx.session.create({ data });
  }

  findLive(
    tokenHash: string,
    now: Date,
    tx: Tx = this.db,
  ): Promise<(Session & { user: User & { _count: { passkeys: number } } }) | null> {
    return tx.session.findFirst({
      where: { tokenHash, revokedAt: null, expiresAt: { gt: now } },
      include: { user: { include: { _count: { select: { passkeys: true } } } } },
    });
  }

  listLive(userId: string, now: Date, tx: Tx = this.db): Promise<Session[]> {
    return tx.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: now } },
      orderBy: { createdAt: 'desc' },
    });
  }

  /** Ends every live session of the user but `keepId`; how many ended. */
  async revokeOthers(userId: string, keepId: string, now: Date, tx: Tx = this.db): Promise<number> {
    const { count } = await tx.session.updateMany({
      where: { userId, id: { not: keepId }, revokedAt: null, expiresAt: { gt: now } },
      data: { revokedAt: now },
    });
    return count;
  }

  async revoke(tokenHash: string, now: Date, tx: Tx = this.db): Promise<void> {
    await tx.session.updateMany({ where: { tokenHash, revokedAt: null }, data: { revokedAt: now } });
  }
}
