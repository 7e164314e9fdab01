import type pg from 'pg';

type Queryable = Pick<pg.PoolClient, 'query'>;

export interface AuditorRow {
  id: string;
  orgId: string;
  revokedAt: Date | null;
}

/** Auditor credentials: id, org, and the token's SHA-256 — never the token. */
export class AuditorsRepository {
  static async insert(
    db: Queryable,
    auditor: { id: string; orgId: string; name: string; tokenHash: Buffer; createdBy: string },
  ): Promise<void> {
    await db.query(`INSERT INTO auditors (id, org_id, name, token_hash, created_by) VALUES ($1, $2, $3, $4, $5)`, [
      auditor.id,
      auditor.orgId,
      auditor.name,
      auditor.tokenHash,
      auditor.createdBy,
    ]);
  }

  /** Sets revoked_at once (the only UPDATE audit_writer may run); false if no such auditor in that org. */
  static async revoke(db: Queryable, orgId: string, auditorId: string): Promise<boolean> {
    const { rowCount } = await db.query(
      `UPDATE auditors SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND org_id = $2`,
      [auditorId, orgId],
    );
    return (rowCount ?? 0) > 0;
  }

  static async byTokenHash(db: Queryable, tokenHash: Buffer): Promise<AuditorRow | undefined> {
    const { rows } = await db.query<{ id: string; org_id: string; revoked_at: Date | null }>(
      `SELECT id, org_id, revoked_at FROM auditors WHERE token_hash = $1`,
      [tokenHash],
    );
    const [row] = rows;
    return row ? { id: row.id, orgId: row.org_id, revokedAt: row.revoked_at } : undefined;
  }
}
