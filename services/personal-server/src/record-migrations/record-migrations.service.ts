import type { DataKey } from '@context-gateway/crypto';
import {
  assertRecordMigrationsConsistent,
  CATALOG_VERSION,
  migrateRecordBody,
  pendingRecordMigrations,
  type RecordMigration,
  typesForScopes,
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
        reports.push(await this.migrateConnection(id));
      }
      after = ids[ids.length - 1] ?? after;
    }
    return reports;
  }

  /** One connection, through every migration it still needs. */
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
      if (this.stopping) return report;
      const unfit = new Set<string>();
      for (;;) {
        if (this.stopping) return report;
        const done = await this.connections.transaction(async (tx) => {
          const connection = await this.repository.lock(tx, connectionId);
          if (!connection || connection.recordsVersion >= migration.version) return true;
          const rows = await this.repository.liveOfType(tx, connectionId, migration.from, [...unfit], BATCH);
          if (rows.length === 0) return true;
          const key = await this.open(connection.row);
          const existing = await this.repository.externalIdsOfType(
            tx,
            connectionId,
            migration.to,
            rows.map((r) => r.externalId),
          );
          let version = connection.row.lastVersion;
          for (const row of rows) {
            if (existing.has(row.externalId)) {
              // Something wrote the item under its new type since (a re-upload): that newer copy stands.
              await this.repository.remove(tx, row.id);
              report.superseded++;
              continue;
            }
            const body = this.rewrite(migration, key, connection.row, row);
            if (body === undefined) {
              unfit.add(row.id);
              report.unfit++;
              continue;
            }
            version += 1n;
            await this.repository.move(tx, {
              id: row.id,
              type: migration.to,
              ciphertext: key.encrypt(
                body,
                recordAad(connection.row.personalServerId, connectionId, row.id, migration.to),
              ),
              bodyDigest: key.digest(
                body,
                recordDigestContext(connection.row.personalServerId, connectionId, migration.to, row.externalId),
              ),
              version,
            });
            report.moved++;
          }
          await this.repository.advance(tx, connectionId, version);
          return false;
        });
        if (done) break;
      }
      // Tombstones under the old type: nothing can read that type any more.
      report.grantsResealed += await this.connections.transaction(async (tx) => {
        const connection = await this.repository.lock(tx, connectionId);
        if (!connection || connection.recordsVersion >= migration.version) return 0;
        await this.repository.removeTombstones(tx, connectionId, migration.from);
        const resealed = await this.resealGrants(tx, connection.row);
        await this.repository.setVersion(tx, connectionId, migration.version);
        return resealed;
      });
      report.toVersion = migration.version;
      this.logger.info(
        {
          connectionId,
          migration: migration.name,
          moved: report.moved,
          superseded: report.superseded,
          unfit: report.unfit,
        },
        'stored records migrated',
      );
    }
    // No migration applies (or the last one is done): the connection is current.
    await this.connections.transaction((tx) => this.repository.setVersion(tx, connectionId, CATALOG_VERSION));
    report.toVersion = CATALOG_VERSION;
    return report;
  }

  /** The body under its new type, or undefined (logged, never its content) when it does not fit. */
  private rewrite(
    migration: RecordMigration,
    key: DataKey,
    connection: ConnectionRow,
    row: { id: string; externalId: string; ciphertext: Buffer },
  ): Buffer | undefined {
    try {
      const plaintext = key.decrypt(
        row.ciphertext,
        recordAad(connection.personalServerId, connection.id, row.id, migration.from),
      );
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
   * A grant's types are derived from its scopes (grants.service); the catalog now maps the
   * scopes to other types, so they are derived again and the grant sealed again. Only a
   * grant whose seal still matches is touched: one that was tampered with stays refused.
   */
  private async resealGrants(tx: PoolClient, connection: ConnectionRow): Promise<number> {
    const grants = await this.repository.activeGrants(tx, connection.id);
    if (grants.length === 0) return 0;
    const key = await this.open(connection);
    let resealed = 0;
    for (const grant of grants) {
      const types = [...typesForScopes(connection.integration, grant.fields.scopes)].sort();
      if (types.join('\u0000') === grant.fields.types.join('\u0000')) continue;
      if (!grantSealMatches(key, grant.fields, grant.seal)) {
        this.logger.warn({ grantId: grant.fields.id }, 'a grant whose seal does not match was not migrated');
        continue;
      }
      const fields = { ...grant.fields, types };
      await this.repository.updateGrantTypes(tx, grant.fields.id, types, sealGrant(key, fields));
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
