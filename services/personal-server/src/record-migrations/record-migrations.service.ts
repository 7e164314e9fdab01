import type { DataKey } from '@context-gateway/crypto';
import {
  assertRecordMigrationsConsistent,
  CATALOG_VERSION,
  migrateRecordBody,
  pendingRecordMigrations,
  type RecordMigration,
} from '@context-gateway/record-catalog';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { Logger } from 'pino';

import type { ConnectionRow } from '../connections/connections.repository.js';
import { ConnectionsService } from '../connections/connections.service.js';
import { DirectoryService } from '../directory/directory.service.js';
import { grantSealMatches, sealGrant } from '../grants/grant-seal.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { recordAad, recordDigestContext } from '../records/record-aad.js';
import { RecordMigrationsRepository } from './record-migrations.repository.js';

/** What one connection's migration did (logged; returned to tests). */
export interface ConnectionMigrationReport {
  connectionId: string;
  fromVersion: number;
  toVersion: number;
  /** Records moved to their new type (same record id, a new change version). */
  moved: number;
  /** Records dropped because the connection already held the item under the new type (a newer write). */
  superseded: number;
  /** Records whose body does not fit the new type: left where they were, and logged. */
  unfit: number;
  /** Grants whose types were derived again from their scopes, and sealed again. */
  grantsResealed: number;
}

const BATCH = 500;

/**
 * Brings the stored records of this shard's connections to the record catalog's current
 * version, once, in the background after start (docs/record-types.md, "Migrations of stored
 * records"). Per connection and migration, in batches, each under the connection's row lock
 * (the same lock sync writes take, so a write and a migration never interleave within a
 * batch): decrypt, rewrite, validate, encrypt again under the new type (the AAD and digest
 * name the type), give the record the next change version so apps following the feed see
 * it; then derive the types of the connection's grants again from their sealed scopes and
 * seal them again. A run cut short — a crash, a shutdown — is simply run again: a moved
 * record is no longer found under its old type, and the version is set only at the end.
 */
@Injectable()
export class RecordMigrationsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly repository: RecordMigrationsRepository,
    private readonly connections: ConnectionsService,
    private readonly directory: DirectoryService,
    private readonly keys: RecordKeys,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    assertRecordMigrationsConsistent();
  }

  onApplicationBootstrap(): void {
    // In the background: a shard answers queries while it migrates (a connection not yet
    // migrated answers as before the new catalog until its turn comes).
    this.running = this.migrateShard().then(
      (reports) => {
        if (reports.length > 0)
          this.logger.info({ connections: reports.length }, 'stored records are at the current catalog version');
      },
      (error: unknown) =>
        this.logger.error({ err: error }, 'migrating stored records failed; it runs again at the next start'),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  /** Every connection of this shard below the current catalog version, one after the other. */
  async migrateShard(): Promise<ConnectionMigrationReport[]> {
    const reports: ConnectionMigrationReport[] = [];
    let after = '00000000-0000-0000-0000-000000000000';
    while (!this.stopping) {
      const ids = await this.repository.behind(this.directory.shardId, CATALOG_VERSION, after, 100);
      if (ids.length === 0) break;
      for (const id of ids) {
        if (this.stopping) break;
        // One connection that cannot be migrated now (its key unavailable) does not hold up the others.
        try {
          reports.push(await this.migrateConnection(id));
        } catch (error) {
          this.logger.error(
            { connectionId: id, code: (error as { code?: string }).code },
            "migrating a connection's stored records failed; it is tried again at its next query or the next start",
          );
        }
      }
      after = ids[ids.length - 1] ?? after;
    }
    return reports;
  }

  /**
   * One connection, through every migration it still needs. Each migration is ONE
   * transaction under the connection's row lock: an app never reads a connection half
   * moved (records under the new type while its grants still name the old one), and a
   * failure — a key that cannot be opened, a record that cannot be decrypted — rolls the
   * whole migration back; it runs again at the next start or the next query.
   */
  async migrateConnection(connectionId: string): Promise<ConnectionMigrationReport> {
    const start = await this.connections.transaction((tx) => this.repository.version(tx, connectionId));
    const report: ConnectionMigrationReport = {
      connectionId,
      fromVersion: start ?? CATALOG_VERSION,
      toVersion: start ?? CATALOG_VERSION,
      moved: 0,
      superseded: 0,
      unfit: 0,
      grantsResealed: 0,
    };
    if (start === undefined || start >= CATALOG_VERSION) return report;
    for (const migration of pendingRecordMigrations(start)) {
      const counts = await this.connections.transaction((tx) => this.apply(tx, connectionId, migration));
      if (counts === undefined) continue; // deleted, or already migrated by another shard process
      report.moved += counts.moved;
      report.superseded += counts.superseded;
      report.unfit += counts.unfit;
      report.grantsResealed += counts.grantsResealed;
      report.toVersion = migration.version;
      this.logger.info({ connectionId, migration: migration.name, ...counts }, 'stored records migrated');
    }
    // No migration applies (or the last one is done): the connection is current.
    await this.connections.transaction((tx) => this.repository.setVersion(tx, connectionId, CATALOG_VERSION));
    report.toVersion = CATALOG_VERSION;
    return report;
  }

  /** One migration of one connection, inside `tx` (which holds the connection's row lock from here on). */
  private async apply(
    tx: PoolClient,
    connectionId: string,
    migration: RecordMigration,
  ): Promise<Omit<ConnectionMigrationReport, 'connectionId' | 'fromVersion' | 'toVersion'> | undefined> {
    const connection = await this.repository.lock(tx, connectionId);
    if (!connection || connection.recordsVersion >= migration.version) return undefined;
    const counts = { moved: 0, superseded: 0, unfit: 0, grantsResealed: 0 };
    const key = await this.open(connection.row);
    const unfit: string[] = [];
    let version = connection.row.lastVersion;
    for (;;) {
      const rows = await this.repository.liveOfType(tx, connectionId, migration.from, unfit, BATCH);
      if (rows.length === 0) break;
      const existing = await this.repository.externalIdsOfType(
        tx,
        connectionId,
        migration.to,
        rows.map((r) => r.externalId),
      );
      for (const row of rows) {
        if (existing.has(row.externalId)) {
          // Something wrote the item under its new type since (a re-upload): that newer copy stands.
          await this.repository.remove(tx, row.id);
          counts.superseded++;
          continue;
        }
        const body = this.rewrite(migration, key, connection.row, row);
        if (body === undefined) {
          unfit.push(row.id);
          counts.unfit++;
          continue;
        }
        version += 1n;
        await this.repository.move(tx, {
          id: row.id,
          type: migration.to,
          ciphertext: key.encrypt(body, recordAad(connection.row.personalServerId, connectionId, row.id, migration.to)),
          bodyDigest: key.digest(
            body,
            recordDigestContext(connection.row.personalServerId, connectionId, migration.to, row.externalId),
          ),
          version,
        });
        counts.moved++;
      }
    }
    await this.repository.advance(tx, connectionId, version);
    // Tombstones under the old type: nothing can read that type any more.
    await this.repository.removeTombstones(tx, connectionId, migration.from);
    counts.grantsResealed = await this.resealGrants(tx, connection.row, key, migration);
    await this.repository.setVersion(tx, connectionId, migration.version);
    return counts;
  }

  /**
   * The body under its new type, or undefined when it does not fit that type (logged with
   * the record's id, never its content; it stays under the old type). A record that cannot
   * be decrypted is not "unfit": that throws, and the whole migration is rolled back.
   */
  private rewrite(
    migration: RecordMigration,
    key: DataKey,
    connection: ConnectionRow,
    row: { id: string; externalId: string; ciphertext: Buffer },
  ): Buffer | undefined {
    const plaintext = key.decrypt(
      row.ciphertext,
      recordAad(connection.personalServerId, connection.id, row.id, migration.from),
    );
    try {
      const body = JSON.parse(plaintext.toString('utf8')) as Record<string, unknown>;
      return Buffer.from(JSON.stringify(migrateRecordBody(migration, body)));
    } catch (error) {
      this.logger.warn(
        {
          connectionId: connection.id,
          recordId: row.id,
          migration: migration.name,
          code: (error as { code?: string }).code,
        },
        'a stored record does not fit its new type; left where it was',
      );
      return undefined;
    }
  }

  /**
   * A grant names the types it covers (derived from its scopes when it was registered). The
   * migration replaces the retired type by its successor in each active grant and seals the
   * grant again — nothing else changes, so no other catalog change can widen a grant here.
   * Only a grant whose seal still matches is touched: one that was tampered with stays refused.
   */
  private async resealGrants(
    tx: PoolClient,
    connection: ConnectionRow,
    key: DataKey,
    migration: RecordMigration,
  ): Promise<number> {
    const grants = await this.repository.activeGrants(tx, connection.id);
    let resealed = 0;
    for (const grant of grants) {
      if (!grant.fields.types.includes(migration.from)) continue;
      if (!grantSealMatches(key, grant.fields, grant.seal)) {
        this.logger.warn({ grantId: grant.fields.id }, 'a grant whose seal does not match was not migrated');
        continue;
      }
      const types = [...new Set(grant.fields.types.map((t) => (t === migration.from ? migration.to : t)))].sort();
      await this.repository.updateGrantTypes(tx, grant.fields.id, types, sealGrant(key, { ...grant.fields, types }));
      resealed++;
    }
    return resealed;
  }

  private open(connection: ConnectionRow): Promise<DataKey> {
    return this.keys.open(connection.dataKeyId, {
      personalServerId: connection.personalServerId,
      connectionId: connection.id,
      userId: connection.userId,
    });
  }
}
