import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';

import { DirectoryService } from '../directory/directory.service.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { type ConnectionRow, ConnectionsRepository } from './connections.repository.js';

/**
 * A connection's life at the Personal Server: created (with its own data key) the first
 * time a grant or a sync names it, destroyed — key first — when the user deletes it.
 */
@Injectable()
export class ConnectionsService {
  constructor(
    private readonly repository: ConnectionsRepository,
    private readonly directory: DirectoryService,
    private readonly keys: RecordKeys,
  ) {}

  transaction<T>(work: (tx: PoolClient) => Promise<T>): Promise<T> {
    return this.repository.transaction(work);
  }

  /**
   * The connection, created if new (provisioning the user's server and a fresh data key).
   * A connection id already bound to another user or integration is refused: ids come from
   * the broker, and a mismatch means a caller is confused, not that we should re-bind.
   * `reconnect`: the broker registers a grant after a new consent. The broker keeps a
   * connection's id when its person connects the same source again after deleting it (and
   * only once this shard confirmed the deletion), so that call may bring a deleted id back,
   * under a fresh key; nothing else may.
   */
  async ensure(
    tx: PoolClient,
    input: { connectionId: string; userId: string; integration: string },
    forUpdate = false,
    reconnect = false,
  ): Promise<ConnectionRow> {
    let row = await this.repository.find(tx, input.connectionId, forUpdate);
    if (!row) {
      // A deleted connection stays deleted: a late write must not re-create it under a new key.
      if (await this.repository.wasDeleted(tx, input.connectionId)) {
        if (!reconnect) throw new AppError('connection_not_found', 'The connection was deleted');
        await this.repository.forgetDeleted(tx, input.connectionId);
      }
      const server = await this.directory.provision(input.userId, tx);
      const owner = {
        personalServerId: server.personalServerId,
        connectionId: input.connectionId,
        userId: input.userId,
      };
      const dataKeyId = await this.keys.create(owner);
      const inserted = await this.repository.insertIfAbsent(tx, {
        id: input.connectionId,
        personalServerId: server.personalServerId,
        userId: input.userId,
        integration: input.integration,
        dataKeyId,
      });
      if (!inserted) await this.keys.destroy(dataKeyId, owner); // lost a race: the other key stays
      row = await this.repository.find(tx, input.connectionId, forUpdate);
      if (!row) throw new AppError('internal', 'connection vanished while being created');
    }
    if (row.userId !== input.userId || row.integration !== input.integration) {
      throw new AppError('conflict', 'The connection id belongs to another user or integration');
    }
    return row;
  }

  /**
   * Crypto-shredding. The key file is deleted inside the transaction, before the commit:
   * if anything fails after that, the records are unreadable anyway, which is the outcome
   * the user asked for; the other order could leave readable records behind a deleted row.
   */
  async delete(connectionId: string, userId: string): Promise<{ recordsDeleted: number; grantsRevoked: number }> {
    return this.repository.transaction(async (tx) => {
      const row = await this.repository.find(tx, connectionId, true);
      if (!row) return { recordsDeleted: 0, grantsRevoked: 0 }; // already gone: idempotent
      if (row.userId !== userId) throw new AppError('connection_not_found');
      const counts = await this.repository.deleteCascade(tx, connectionId);
      await this.keys.destroy(row.dataKeyId, { personalServerId: row.personalServerId, connectionId, userId });
      return { recordsDeleted: counts.records, grantsRevoked: counts.activeGrants };
    });
  }
}
