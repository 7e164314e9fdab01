import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

import { type ConnectionRow, ConnectionsRepository } from '../connections/connections.repository.js';
import type { SealedGrantFields } from '../grants/grant-seal.js';
import { type GrantColumns, grantRowFrom } from '../grants/grants.repository.js';
import { STORED_KEYS_SQL } from '../records/records.repository.js';

/** A stored record a migration reads: its id, item id and ciphertext. */
export interface MigratingRecord {
  id: string;
  externalId: string;
  ciphertext: Buffer;
}

/** An active grant with its seal, as a migration re-derives its types. */
export interface SealedGrant {
  fields: SealedGrantFields;
  seal: Buffer | null;
}

/** The SQL of record migrations (record-migrations.service.ts); every method takes its transaction. */
@Injectable()
export class RecordMigrationsRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly connections: ConnectionsRepository,
  ) {}

  /** Ids of this shard's connections whose records are below `version`, in id order after `after`. */
  async behind(shard: number, version: number, after: string, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT c.id FROM connections c JOIN personal_servers ps ON ps.id = c.personal_server_id
        WHERE ps.shard = $1 AND c.records_version < $2 AND c.id > $3
        ORDER BY c.id LIMIT $4`,
      [shard, version, after, limit],
    );
    return rows.map((r) => r.id);
  }

  async version(tx: PoolClient, connectionId: string): Promise<number | undefined> {
    const { rows } = await tx.query<{ records_version: number }>(
      'SELECT records_version FROM connections WHERE id = $1',
      [connectionId],
    );
    return rows[0]?.records_version;
  }

  /** The connection under its row lock (what sync writes take), with its records' version. */
  async lock(
    tx: PoolClient,
    connectionId: string,
  ): Promise<{ row: ConnectionRow; recordsVersion: number } | undefined> {
    const row = await this.connections.find(tx, connectionId, true);
    if (!row) return undefined;
    const recordsVersion = await this.version(tx, connectionId);
    return recordsVersion === undefined ? undefined : { row, recordsVersion };
  }

  /** Live records of one type, except those already found unfit, oldest id first. */
  async liveOfType(
    tx: PoolClient,
    connectionId: string,
    type: string,
    except: string[],
    limit: number,
  ): Promise<MigratingRecord[]> {
    const { rows } = await tx.query<{ id: string; external_id: string; ciphertext: Buffer }>(
      `SELECT id, external_id, ciphertext FROM records
        WHERE connection_id = $1 AND type = $2 AND deleted_at IS NULL AND NOT (id = ANY($3::uuid[]))
        ORDER BY id LIMIT $4`,
      [connectionId, type, except, limit],
    );
    return rows.map((r) => ({ id: r.id, externalId: r.external_id, ciphertext: r.ciphertext }));
  }

  /** Which of `externalIds` the connection holds under `type` (live or tombstone). */
  async externalIdsOfType(
    tx: PoolClient,
    connectionId: string,
    type: string,
    externalIds: string[],
  ): Promise<Set<string>> {
    const { rows } = await tx.query<{ external_id: string }>(STORED_KEYS_SQL, [connectionId, type, externalIds]);
    return new Set(rows.map((r) => r.external_id));
  }

  /** The record, same id, under its new type with its new ciphertext, digest and change version. */
  async move(
    tx: PoolClient,
    record: { id: string; type: string; ciphertext: Buffer; bodyDigest: Buffer; version: bigint },
  ): Promise<void> {
    await tx.query(
      // clock_timestamp(), not now(): the transaction may have waited for the row lock, and an
      // app following the feed with `since` must not find this change dated before a write that
      // committed meanwhile (the write path dates rows the same way).
      `UPDATE records SET type = $2, ciphertext = $3, body_digest = $4, version = $5, updated_at = clock_timestamp()
        WHERE id = $1`,
      [record.id, record.type, record.ciphertext, record.bodyDigest, record.version.toString()],
    );
  }

  async remove(tx: PoolClient, recordId: string): Promise<void> {
    await tx.query('DELETE FROM records WHERE id = $1', [recordId]);
  }

  async removeTombstones(tx: PoolClient, connectionId: string, type: string): Promise<void> {
    await tx.query('DELETE FROM records WHERE connection_id = $1 AND type = $2 AND deleted_at IS NOT NULL', [
      connectionId,
      type,
    ]);
  }

  /** The connection's change counter after a batch (only ever forward). */
  async advance(tx: PoolClient, connectionId: string, lastVersion: bigint): Promise<void> {
    await tx.query('UPDATE connections SET last_version = GREATEST(last_version, $2) WHERE id = $1', [
      connectionId,
      lastVersion.toString(),
    ]);
  }

  async setVersion(tx: PoolClient, connectionId: string, version: number): Promise<void> {
    await tx.query('UPDATE connections SET records_version = GREATEST(records_version, $2) WHERE id = $1', [
      connectionId,
      version,
    ]);
  }

  async activeGrants(tx: PoolClient, connectionId: string): Promise<SealedGrant[]> {
    const { rows } = await tx.query<GrantColumns & { seal: Buffer | null }>(
      `SELECT g.*, c.integration FROM grants g JOIN connections c ON c.id = g.connection_id
        WHERE g.connection_id = $1 AND g.state = 'active' FOR UPDATE OF g`,
      [connectionId],
    );
    return rows.map((r) => {
      const { state: _state, integration: _integration, ...fields } = grantRowFrom(r);
      return { fields, seal: r.seal };
    });
  }

  async updateGrantTypes(tx: PoolClient, grantId: string, types: string[], seal: Buffer): Promise<void> {
    await tx.query(`UPDATE grants SET types = $2, seal = $3, updated_at = now() WHERE id = $1 AND state = 'active'`, [
      grantId,
      types,
      seal,
    ]);
  }
}
