import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

export interface PinnedPasskey {
  userId: string;
  credentialId: string;
  publicKey: Buffer;
  seal: Buffer;
}

/** What pinning needs of the person's Personal Server row. */
export interface ServerPins {
  personalServerId: string;
  pinnedAt: Date | null;
}

type Db = Pool | PoolClient;

/** `pinned_passkeys`, the server rows' pinning columns and `spent_passkey_nonces`. */
@Injectable()
export class PinnedPasskeysRepository {
  constructor(@Inject(PG_POOL) readonly pool: Pool) {}

  /** The person's server row; `lock`: FOR UPDATE, in the caller's transaction. */
  async server(db: Db, userId: string, lock = false): Promise<ServerPins | undefined> {
    const { rows } = await db.query<{ id: string; passkeys_pinned_at: Date | null }>(
      `SELECT id, passkeys_pinned_at FROM personal_servers WHERE user_id = $1${lock ? ' FOR UPDATE' : ''}`,
      [userId],
    );
    const [row] = rows;
    return row && { personalServerId: row.id, pinnedAt: row.passkeys_pinned_at };
  }

  async markPinned(tx: PoolClient, personalServerId: string): Promise<void> {
    await tx.query('UPDATE personal_servers SET passkeys_pinned_at = now() WHERE id = $1', [personalServerId]);
  }

  async insert(tx: PoolClient, pin: PinnedPasskey): Promise<void> {
    await tx.query(
      `INSERT INTO pinned_passkeys (user_id, credential_id, public_key, seal) VALUES ($1, $2, $3, $4)
       ON CONFLICT (user_id, credential_id) DO NOTHING`,
      [pin.userId, pin.credentialId, pin.publicKey, pin.seal],
    );
  }

  async find(db: Db, userId: string, credentialId: string): Promise<PinnedPasskey | undefined> {
    const { rows } = await db.query<{ public_key: Buffer; seal: Buffer }>(
      'SELECT public_key, seal FROM pinned_passkeys WHERE user_id = $1 AND credential_id = $2',
      [userId, credentialId],
    );
    const [row] = rows;
    return row && { userId, credentialId, publicKey: row.public_key, seal: row.seal };
  }

  async list(userId: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ credential_id: string }>(
      'SELECT credential_id FROM pinned_passkeys WHERE user_id = $1 ORDER BY pinned_at, credential_id',
      [userId],
    );
    return rows.map((r) => r.credential_id);
  }

  /** Removes one pin, never the person's last one (`last`); under the server's row lock. */
  async remove(tx: PoolClient, userId: string, credentialId: string): Promise<'removed' | 'missing' | 'last'> {
    const { rows } = await tx.query<{ credential_id: string }>(
      'SELECT credential_id FROM pinned_passkeys WHERE user_id = $1',
      [userId],
    );
    if (!rows.some((r) => r.credential_id === credentialId)) return 'missing';
    if (rows.length === 1) return 'last';
    await tx.query('DELETE FROM pinned_passkeys WHERE user_id = $1 AND credential_id = $2', [userId, credentialId]);
    return 'removed';
  }

  /**
   * Spends a signature's nonce on `subject`: `spent` by this call, `same` when an earlier
   * call spent it on the very same subject (a retry: the caller decides whether that is
   * still the same thing), `other` when it went to something else.
   */
  async spend(tx: PoolClient, nonce: string, userId: string, subject: string): Promise<'spent' | 'same' | 'other'> {
    const inserted = await tx.query(
      `INSERT INTO spent_passkey_nonces (nonce, user_id, subject) VALUES ($1, $2, $3) ON CONFLICT (nonce) DO NOTHING`,
      [nonce, userId, subject],
    );
    if ((inserted.rowCount ?? 0) > 0) return 'spent';
    const { rows } = await tx.query<{ user_id: string; subject: string }>(
      'SELECT user_id, subject FROM spent_passkey_nonces WHERE nonce = $1',
      [nonce],
    );
    return rows[0]?.user_id === userId && rows[0].subject === subject ? 'same' : 'other';
  }
}
