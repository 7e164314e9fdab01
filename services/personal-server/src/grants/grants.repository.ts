import { AppError } from '@context-gateway/errors';
import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

export interface GrantRow {
  id: string;
  connectionId: string;
  orgId: string;
  applicationId: string;
  userId: string;
  scopes: string[];
  types: string[];
  state: 'active' | 'revoked';
  integration: string;
  /** The nonce of the signed consent it was registered with (sealed with it). */
  consentNonce: string;
}

/** A `grants` row as Postgres returns it (with its connection's integration). */
export interface GrantColumns {
  id: string;
  connection_id: string;
  org_id: string;
  application_id: string;
  user_id: string;
  scopes: string[];
  types: string[];
  state: 'active' | 'revoked';
  integration: string;
  consent_nonce: string | null;
}

export function grantRowFrom(r: GrantColumns): GrantRow {
  return {
    id: r.id,
    connectionId: r.connection_id,
    orgId: r.org_id,
    applicationId: r.application_id,
    userId: r.user_id,
    scopes: r.scopes,
    types: r.types,
    state: r.state,
    integration: r.integration,
    consentNonce: r.consent_nonce ?? '',
  };
}

/** `grants`: this shard's copy of the broker's grant decisions, enforced on every query. */
@Injectable()
export class GrantsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * One grant per (connection, app): a new consent by the same app replaces the earlier
   * grant (new id, new scopes) and makes it active again.
   */
  async upsert(tx: PoolClient, grant: Omit<GrantRow, 'state' | 'integration'>, seal: Buffer): Promise<GrantRow> {
    const { rows } = await tx.query<GrantColumns>(
      `INSERT INTO grants (id, connection_id, org_id, application_id, user_id, scopes, types, state, seal,
                          consent_nonce, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, now())
       ON CONFLICT (connection_id, application_id) DO UPDATE
         SET id = EXCLUDED.id, org_id = EXCLUDED.org_id, user_id = EXCLUDED.user_id, scopes = EXCLUDED.scopes,
             types = EXCLUDED.types, state = 'active', seal = EXCLUDED.seal, consent_nonce = EXCLUDED.consent_nonce,
             revoked_at = NULL, updated_at = now()
       RETURNING *, (SELECT integration FROM connections WHERE id = $2) AS integration`,
      [
        grant.id,
        grant.connectionId,
        grant.orgId,
        grant.applicationId,
        grant.userId,
        grant.scopes,
        grant.types,
        seal,
        grant.consentNonce,
      ],
    );
    const [row] = rows;
    // INSERT … ON CONFLICT DO UPDATE … RETURNING always returns the row it wrote.
    if (!row) throw new AppError('internal', 'The grant upsert returned no row');
    return grantRowFrom(row);
  }

  /** One grant by id, locked for the caller's transaction. */
  async find(tx: PoolClient, grantId: string): Promise<GrantRow | undefined> {
    const { rows } = await tx.query<GrantColumns>(
      `SELECT g.*, c.integration FROM grants g JOIN connections c ON c.id = g.connection_id WHERE g.id = $1 FOR UPDATE OF g`,
      [grantId],
    );
    return rows[0] && grantRowFrom(rows[0]);
  }

  /**
   * Marks the grant revoked and drops its seal (grant-seal.ts), committed when this returns. Matches by grant id or by
   * (connection, application); `userId`/`applicationId`, when given, must own it.
   */
  async revoke(match: {
    grantId?: string;
    connectionId?: string;
    applicationId?: string;
    userId?: string;
  }): Promise<GrantRow | undefined> {
    const { rows } = await this.pool.query<GrantColumns>(
      `UPDATE grants g SET state = 'revoked', seal = NULL, revoked_at = COALESCE(revoked_at, now()), updated_at = now()
        FROM connections c
       WHERE c.id = g.connection_id
         AND ($1::uuid IS NULL OR g.id = $1)
         AND ($2::uuid IS NULL OR g.connection_id = $2)
         AND ($3::uuid IS NULL OR g.application_id = $3)
         AND ($4::uuid IS NULL OR g.user_id = $4)
       RETURNING g.*, c.integration`,
      [match.grantId ?? null, match.connectionId ?? null, match.applicationId ?? null, match.userId ?? null],
    );
    return rows[0] && grantRowFrom(rows[0]);
  }
}
