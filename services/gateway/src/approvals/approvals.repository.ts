import type { Pool } from 'pg';

/** The MCP operations an approval can hold: one capability (`<integration>:tools`) covers several. */
type HeldMethod = 'tools/call' | 'resources/read' | 'prompts/get';

/** What a held call is bound to: the retry must match every one of these exactly. */
export interface ApprovalKey {
  orgId: string;
  applicationId: string;
  userId: string;
  capability: string;
  method: HeldMethod;
  /** The tool, resource URI or prompt as the gateway lists it to the agent. */
  name: string;
  /** SHA-256 of the canonical JSON of method, name and arguments. */
  callHash: string;
}

/** An approval request as stored (`mcp_approvals`, prisma/schema.prisma): its key and its state. */
export interface ApprovalRow extends ApprovalKey {
  id: string;
  arguments: string;
  tool: string;
  nonce: string;
  status: 'pending' | 'approved' | 'declined';
  expiresAt: Date;
  createdAt: Date;
  decidedAt: Date | null;
  consumedAt: Date | null;
  signedBy: string | null;
}

const COLUMNS = `id, org_id AS "orgId", application_id AS "applicationId", user_id AS "userId", capability,
  method, name, call_hash AS "callHash", arguments, tool, nonce, status, expires_at AS "expiresAt",
  created_at AS "createdAt", decided_at AS "decidedAt", consumed_at AS "consumedAt", signed_by AS "signedBy"`;

const MATCHES =
  'org_id = $1 AND application_id = $2 AND user_id = $3 AND capability = $4 AND method = $5 AND name = $6 AND call_hash = $7';

const keyParams = (key: ApprovalKey) => [
  key.orgId,
  key.applicationId,
  key.userId,
  key.capability,
  key.method,
  key.name,
  key.callHash,
];

/**
 * The gateway's approval requests, on its own pg pool (search_path: the gateway schema). Every
 * state change is one conditional UPDATE, so two replicas (or a replayed form post) racing for
 * the same request see exactly one winner.
 */
export class ApprovalsRepository {
  constructor(private readonly pool: Pick<Pool, 'query'>) {}

  async insert(row: Omit<ApprovalRow, 'status' | 'decidedAt' | 'consumedAt' | 'signedBy'>): Promise<void> {
    await this.pool.query(
      `INSERT INTO mcp_approvals (id, org_id, application_id, user_id, capability, method, name, call_hash, arguments,
         tool, nonce, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        row.id,
        row.orgId,
        row.applicationId,
        row.userId,
        row.capability,
        row.method,
        row.name,
        row.callHash,
        row.arguments,
        row.tool,
        row.nonce,
        row.expiresAt,
        row.createdAt,
      ],
    );
  }

  async find(id: string): Promise<ApprovalRow | undefined> {
    const { rows } = await this.pool.query<ApprovalRow>(`SELECT ${COLUMNS} FROM mcp_approvals WHERE id = $1`, [id]);
    return rows[0];
  }

  /** A request for this exact call still waiting for the person (reused by a retry before they decide). */
  async pending(key: ApprovalKey, now: Date): Promise<ApprovalRow | undefined> {
    const { rows } = await this.pool.query<ApprovalRow>(
      `SELECT ${COLUMNS} FROM mcp_approvals WHERE ${MATCHES} AND status = 'pending' AND expires_at > $8
       ORDER BY created_at DESC LIMIT 1`,
      [...keyParams(key), now],
    );
    return rows[0];
  }

  /**
   * Spends the oldest decided, unexpired, unused request for this exact call: the retried
   * call's one use of the person's answer (approved or declined). Undefined when none.
   */
  async consume(key: ApprovalKey, now: Date): Promise<Pick<ApprovalRow, 'id' | 'status'> | undefined> {
    const { rows } = await this.pool.query<Pick<ApprovalRow, 'id' | 'status'>>(
      `UPDATE mcp_approvals SET consumed_at = $8
       WHERE id = (SELECT id FROM mcp_approvals
                   WHERE ${MATCHES} AND status IN ('approved', 'declined') AND consumed_at IS NULL AND expires_at > $8
                   ORDER BY decided_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         AND consumed_at IS NULL
       RETURNING id, status`,
      [...keyParams(key), now],
    );
    return rows[0];
  }

  /** pending → approved | declined, while unexpired; false when it was no longer pending (a replay, a race). */
  async decide(id: string, status: 'approved' | 'declined', now: Date, signedBy: string | undefined): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE mcp_approvals SET status = $2, decided_at = $3, signed_by = $4
       WHERE id = $1 AND status = 'pending' AND expires_at > $3`,
      [id, status, now, signedBy ?? null],
    );
    return result.rowCount === 1;
  }

  /** Requests over a day past their expiry: nothing reads them any more. */
  async purge(before: Date): Promise<number> {
    const result = await this.pool.query('DELETE FROM mcp_approvals WHERE expires_at < $1', [before]);
    return result.rowCount ?? 0;
  }
}
