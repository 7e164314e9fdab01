import { CATALOG_VERSION } from '@context-gateway/record-catalog';
import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

export interface ConnectionRow {
  id: string;
  personalServerId: string;
  userId: string;
  integration: string;
  dataKeyId: string;
  lastVersion: bigint;
  syncedAt: Date | null;
}

interface Raw {
  id: string;
  personal_server_id: string;
  user_id: string;
  integration: string;
  data_key_id: string;
  last_version: string;
  synced_at: Date | null;
}

const COLUMNS = 'id, personal_server_id, user_id, integration, data_key_id, last_version, synced_at';

function toRow(r: Raw): ConnectionRow {
  return {
    id: r.id,
    personalServerId: r.personal_server_id,
    userId: r.user_id,
    integration: r.integration,
    dataKeyId: r.data_key_id,
    lastVersion: BigInt(r.last_version),
    syncedAt: r.synced_at,
  };
}

/** `connections` rows; every method takes the transaction it runs in. */
@Injectable()
export class ConnectionsRepository {
  constructor(@Inject(PG_POOL) readonly pool: Pool) {}

  /** Runs `work` in one transaction on one pooled client. */
  async transaction<T>(work: (tx: PoolClient) => Promise<T>): Promise<T> {
    const tx = await this.pool.connect();
    try {
      await tx.query('BEGIN');
      const result = await work(tx);
      await tx.query('COMMIT');
      return result;
    } catch (error) {
      await tx.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      tx.release();
    }
  }

  async find(tx: PoolClient, connectionId: string, forUpdate = false): Promise<ConnectionRow | undefined> {
    const { rows } = await tx.query<Raw>(
      `SELECT ${COLUMNS} FROM connections WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [connectionId],
    );
    return rows[0] && toRow(rows[0]);
  }

  /**
   * The committed row, read outside any transaction and without a lock: what a write can do
   * before it queues for the row lock (its key and owner never change while the row exists).
   */
  async findCommitted(connectionId: string): Promise<ConnectionRow | undefined> {
    const { rows } = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM connections WHERE id = $1`, [connectionId]);
    return rows[0] && toRow(rows[0]);
  }

  /** True when the connection was deleted (shredded) here: it must never come back. */
  async wasDeleted(tx: PoolClient, connectionId: string): Promise<boolean> {
    const { rowCount } = await tx.query('SELECT 1 FROM deleted_connections WHERE id = $1', [connectionId]);
    return (rowCount ?? 0) > 0;
  }

  /** A reconnect after a deletion: the id may be used again (its old records and key are gone). */
  async forgetDeleted(tx: PoolClient, connectionId: string): Promise<void> {
    await tx.query('DELETE FROM deleted_connections WHERE id = $1', [connectionId]);
  }

  async insertIfAbsent(tx: PoolClient, row: Omit<ConnectionRow, 'lastVersion' | 'syncedAt'>): Promise<boolean> {
    const { rowCount } = await tx.query(
      // A new connection has no records of older catalog versions to migrate.
      `INSERT INTO connections (id, personal_server_id, user_id, integration, data_key_id, records_version)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
      [row.id, row.personalServerId, row.userId, row.integration, row.dataKeyId, CATALOG_VERSION],
    );
    return rowCount === 1;
  }

  async advance(tx: PoolClient, connectionId: string, lastVersion: bigint, syncedAt: Date | undefined): Promise<void> {
    await tx.query('UPDATE connections SET last_version = $2, synced_at = GREATEST(synced_at, $3) WHERE id = $1', [
      connectionId,
      lastVersion.toString(),
      syncedAt ?? null,
    ]);
  }

  /** Deletes the connection with its records and grants; returns how many of each went. */
  async deleteCascade(tx: PoolClient, connectionId: string): Promise<{ records: number; activeGrants: number }> {
    const records = await tx.query('DELETE FROM records WHERE connection_id = $1', [connectionId]);
    const grants = await tx.query<{ n: string }>(
      "SELECT count(*) AS n FROM grants WHERE connection_id = $1 AND state = 'active'",
      [connectionId],
    );
    await tx.query('DELETE FROM connections WHERE id = $1', [connectionId]); // grants cascade
    await tx.query('INSERT INTO deleted_connections (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [connectionId]);
    return { records: records.rowCount ?? 0, activeGrants: Number(grants.rows[0]?.n ?? 0) };
  }
}
