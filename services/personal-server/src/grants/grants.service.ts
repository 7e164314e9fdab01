import type { MessageInitShape } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import type { GrantRecordSchema } from '@context-gateway/proto';
import { type GrantRecord, GrantState, type RevokeGrantRequest } from '@context-gateway/proto';
import { typesForScopes } from '@context-gateway/record-catalog';
import { Injectable } from '@nestjs/common';

import { ConnectionsService } from '../connections/connections.service.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { sealGrant } from './grant-seal.js';
import { type GrantRow, GrantsRepository } from './grants.repository.js';

export function toGrantMessage(row: GrantRow): MessageInitShape<typeof GrantRecordSchema> {
  return {
    grantId: row.id,
    orgId: row.orgId,
    applicationId: row.applicationId,
    userId: row.userId,
    connectionId: row.connectionId,
    integration: row.integration,
    scopes: row.scopes,
    state: row.state === 'active' ? GrantState.ACTIVE : GrantState.REVOKED,
  };
}

/**
 * Grants as this service enforces them. Every change is a committed row before the call
 * returns, and the query path reads the row in the same statement as the records, so a
 * revocation is visible to the very next query on any shard process — no cache to expire.
 */
@Injectable()
export class GrantsService {
  constructor(
    private readonly repository: GrantsRepository,
    private readonly connections: ConnectionsService,
    private readonly keys: RecordKeys,
  ) {}

  async register(grant: GrantRecord): Promise<{ row: GrantRow; shard: number; personalServerId: string }> {
    // Scopes the catalog does not map are kept (the broker may know newer ones) but cover no type.
    const types = [...typesForScopes(grant.integration, grant.scopes)].sort();
    return this.connections.transaction(async (tx) => {
      // A registration follows a consent: it may reconnect a deleted connection (see ensure).
      const connection = await this.connections.ensure(
        tx,
        { connectionId: grant.connectionId, userId: grant.userId, integration: grant.integration },
        false,
        true,
      );
      const fields = {
        id: grant.grantId,
        connectionId: grant.connectionId,
        orgId: grant.orgId,
        applicationId: grant.applicationId,
        userId: grant.userId,
        scopes: [...grant.scopes].sort(),
        types,
      };
      const key = await this.keys.open(connection.dataKeyId, {
        personalServerId: connection.personalServerId,
        connectionId: grant.connectionId,
        userId: grant.userId,
      });
      const row = await this.repository.upsert(tx, fields, sealGrant(key, fields));
      const { rows } = await tx.query<{ shard: number }>('SELECT shard FROM personal_servers WHERE id = $1', [
        connection.personalServerId,
      ]);
      const [server] = rows;
      // The connection row references it (foreign key): it exists in this transaction.
      if (!server) throw new AppError('internal', `No personal server ${connection.personalServerId}`);
      return { row, shard: server.shard, personalServerId: connection.personalServerId };
    });
  }

  /**
   * Revokes; idempotent (revoking a revoked grant returns it). Not found → for an app,
   * connection_not_found (it may not learn whether the connection exists); for a user or
   * the broker, not_found.
   */
  async revoke(request: RevokeGrantRequest): Promise<GrantRow> {
    const row = await this.repository.revoke({
      grantId: request.grantId || undefined,
      connectionId: request.connectionId || undefined,
      applicationId: request.applicationId || undefined,
      userId: request.userId || undefined,
    });
    if (!row)
      throw new AppError(
        request.applicationId && !request.userId ? 'connection_not_found' : 'not_found',
        'No such grant',
      );
    return row;
  }
}
