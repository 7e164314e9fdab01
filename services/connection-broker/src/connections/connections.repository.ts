import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import type { Connection, ConnectionDeletion, Grant } from '../generated/prisma/client.js';

export type { Connection };

/** Connections and their sealed credentials. */
@Injectable()
export class ConnectionsRepository {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}

  /**
   * Runs `work` in one transaction. A refresh passes `timeout`/`maxWait`: it holds the row
   * lock across a round trip to the source, which may take up to the source timeout.
   */
  transaction<T>(work: (tx: Tx) => Promise<T>, options?: { timeout: number; maxWait: number }): Promise<T> {
    return this.db.$transaction((tx) => work(tx), options);
  }

  /** Credentials still sealed under the KEK (a deleted connection's key was shredded already). */
  async countSealedCredentials(): Promise<number> {
    const rows = await this.db.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS n FROM connections WHERE data_key_id IS NOT NULL OR wrapped_data_key IS NOT NULL`;
    return rows[0]?.n ?? 0;
  }

  /** Rows whose wrapped data key an older version kept in the database (moved out at startup). */
  legacyWrappedKeys(limit: number): Promise<{ id: string; wrappedDataKey: Uint8Array }[]> {
    return this.db.$queryRaw<{ id: string; wrappedDataKey: Uint8Array }[]>`
      SELECT id::text, wrapped_data_key AS "wrappedDataKey" FROM connections
      WHERE wrapped_data_key IS NOT NULL ORDER BY id LIMIT ${limit}`;
  }

  /** Points a row at its moved key and forgets the old column; false when another replica moved it first. */
  async adoptMovedKey(id: string, dataKeyId: string): Promise<boolean> {
    const changed = await this.db.$executeRaw`
      UPDATE connections SET data_key_id = ${dataKeyId}::uuid, wrapped_data_key = NULL
      WHERE id = ${id}::uuid AND wrapped_data_key IS NOT NULL AND data_key_id IS NULL`;
    return changed === 1;
  }

  findById(id: string, tx: Tx = this.db): Promise<Connection | null> {
    return tx.connection.findUnique({ where: { id } });
  }

  /**
   * A user's connections, oldest first, each with all its grants (active and revoked) and its
   * deletion if any: the live ones and those still being deleted (shredding not confirmed).
   */
  listForUser(userId: string): Promise<(Connection & { grants: Grant[]; deletion: ConnectionDeletion | null })[]> {
    return this.db.connection.findMany({
      where: { userId, OR: [{ deletedAt: null }, { deletion: { confirmedAt: null } }] },
      include: { grants: { orderBy: { createdAt: 'asc' } }, deletion: true },
      orderBy: { createdAt: 'asc' },
    });
  }

  findByUser(userId: string, integration: string, tx: Tx = this.db): Promise<Connection | null> {
    return tx.connection.findUnique({ where: { userId_integration: { userId, integration } } });
  }

  /**
   * Row lock for the refresh: a second replica refreshing the same connection waits here,
   * then sees the credential the first one stored (and its bumped version) instead of
   * spending the rotated-away refresh token.
   */
  async lockForUpdate(tx: Tx, id: string): Promise<Connection | null> {
    await tx.$queryRaw`SELECT id FROM connections WHERE id = ${id}::uuid FOR UPDATE`;
    return tx.connection.findUnique({ where: { id } });
  }

  create(
    tx: Tx,
    data: {
      id: string;
      orgId: string;
      userId: string;
      integration: string;
      authType: 'oauth2' | 'api_key' | 'file_export';
      sourceScopes: string[];
      dataKeyId: string;
      credentialCiphertext: Buffer;
      accessExpiresAt: Date | null;
    },
  ): Promise<Connection> {
    return tx.connection.create({
      data: {
        ...data,
        credentialCiphertext: new Uint8Array(data.credentialCiphertext),
      },
    });
  }

  /** A reconnect: a new credential (and data key) on the same row, active again. */
  replaceCredential(
    tx: Tx,
    id: string,
    data: {
      sourceScopes: string[];
      dataKeyId: string;
      credentialCiphertext: Buffer;
      accessExpiresAt: Date | null;
    },
  ): Promise<Connection> {
    return tx.connection.update({
      where: { id },
      data: {
        ...data,
        wrappedDataKey: null,
        credentialCiphertext: new Uint8Array(data.credentialCiphertext),
        status: 'active',
        deletedAt: null,
        credentialVersion: { increment: 1 },
      },
    });
  }

  /** A refresh: the new credential under the same data key. */
  storeRefreshed(tx: Tx, id: string, credentialCiphertext: Buffer, accessExpiresAt: Date | null): Promise<Connection> {
    return tx.connection.update({
      where: { id },
      data: {
        credentialCiphertext: new Uint8Array(credentialCiphertext),
        accessExpiresAt,
        status: 'active',
        credentialVersion: { increment: 1 },
      },
    });
  }

  /** In `tx`: an active connection becomes needs_reauth. False when it was not active (already marked, or gone). */
  async markNeedsReauth(tx: Tx, id: string): Promise<boolean> {
    const { count } = await tx.connection.updateMany({
      where: { id, status: 'active' },
      data: { status: 'needs_reauth' },
    });
    return count === 1;
  }

  /** Crypto-shredding, database half: the key id and the ciphertext are gone (the key file is destroyed by the vault). */
  async shred(tx: Tx, id: string, now: Date): Promise<void> {
    await tx.connection.update({
      where: { id },
      data: {
        status: 'revoked',
        dataKeyId: null,
        wrappedDataKey: null,
        credentialCiphertext: null,
        accessExpiresAt: null,
        deletedAt: now,
      },
    });
  }
}
