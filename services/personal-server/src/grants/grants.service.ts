import type { MessageInitShape } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import type { GrantRecordSchema } from '@context-gateway/proto';
import { type GrantRecord, GrantState, type PasskeyProof, type RevokeGrantRequest } from '@context-gateway/proto';
import { typesForScopes } from '@context-gateway/record-catalog';
import { Injectable } from '@nestjs/common';

import { ConnectionsService } from '../connections/connections.service.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { PinnedPasskeysService } from '../passkeys/pinned-passkeys.service.js';
import { sealedFields, type SealedGrantFields, sealGrant } from './grant-seal.js';
import { type GrantRow, GrantsRepository } from './grants.repository.js';

/** The stored grant says exactly what `fields` say (the same consent, the same terms). */
function sameGrant(row: GrantRow, fields: SealedGrantFields): boolean {
  return JSON.stringify(sealedFields(row)) === JSON.stringify(sealedFields(fields));
}

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
    private readonly passkeys: PinnedPasskeysService,
  ) {}

  /**
   * A grant the person signed: `consent` must be their pinned passkey's assertion over exactly
   * this grant's terms (person, org, application, integration, scopes), unexpired, and its
   * nonce unspent. A retried registration of the same consent answers the grant as it stands
   * when it is still that consent's and active; a replay after a revocation or a newer
   * consent is refused. Anything refused is passkey_signature_invalid and nothing is written.
   */
  async register(
    grant: GrantRecord,
    consent: PasskeyProof | undefined,
  ): Promise<{ row: GrantRow; shard: number; personalServerId: string }> {
    const terms = {
      userId: grant.userId,
      orgId: grant.orgId,
      applicationId: grant.applicationId,
      integration: grant.integration,
      scopes: grant.scopes,
    };
    await this.passkeys.checkConsent(terms, consent);
    // Scopes the catalog does not map are kept (the broker may know newer ones) but cover no type.
    const types = [...typesForScopes(grant.integration, grant.scopes)].sort();
    const fields = {
      id: grant.grantId,
      connectionId: grant.connectionId,
      orgId: grant.orgId,
      applicationId: grant.applicationId,
      userId: grant.userId,
      scopes: [...grant.scopes].sort(),
      types,
      // checkConsent refused a proof without one.
      consentNonce: consent?.nonce ?? '',
    };
    return this.connections.transaction(async (tx) => {
      const spent = await this.passkeys.spend(tx, grant.userId, consent, `grant:${grant.grantId}`);
      // A registration follows a consent: it may reconnect a deleted connection (see ensure).
      const connection = await this.connections.ensure(
        tx,
        { connectionId: grant.connectionId, userId: grant.userId, integration: grant.integration },
        false,
        true,
      );
      let row: GrantRow | undefined;
      if (spent === 'same') {
        // This consent registered this grant before: a retry, answered with the grant as it stands.
        row = await this.repository.find(tx, grant.grantId);
        if (!row || row.state !== 'active' || !sameGrant(row, fields))
          throw new AppError('passkey_signature_invalid', 'This consent was already used');
      } else {
        const key = await this.keys.open(connection.dataKeyId, {
          personalServerId: connection.personalServerId,
          connectionId: grant.connectionId,
          userId: grant.userId,
        });
        row = await this.repository.upsert(tx, fields, sealGrant(key, fields));
      }
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
