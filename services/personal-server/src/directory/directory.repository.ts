import { randomUUID } from 'node:crypto';

import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

export interface DirectoryEntry {
  personalServerId: string;
  userId: string;
  shard: number;
}

type Db = Pool | PoolClient;

/**
 * The shard directory (`personal_servers`). Plain SQL through the service's pg pool rather
 * than the Prisma client: every repository of this service is on or near the query hot
 * path, where the ORM's per-call overhead is a measurable share of a ~1 ms request.
 */
@Injectable()
export class DirectoryRepository {
  constructor(@Inject(PG_POOL) readonly pool: Pool) {}

  /** Inserts unless the user already has a server; returns the entry either way. */
  async insertIfAbsent(db: Db, userId: string, shard: number): Promise<DirectoryEntry & { created: boolean }> {
    const inserted = await db.query<{ id: string; shard: number }>(
      'INSERT INTO personal_servers (id, user_id, shard) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING RETURNING id, shard',
      [randomUUID(), userId, shard],
    );
    const row = inserted.rows[0];
    if (row) return { personalServerId: row.id, userId, shard: row.shard, created: true };
    const existing = await this.findByUser(db, userId);
    if (!existing) throw new Error('personal server vanished during provisioning');
    return { ...existing, created: false };
  }

  async findByUser(db: Db, userId: string): Promise<DirectoryEntry | undefined> {
    const { rows } = await db.query<{ id: string; shard: number }>(
      'SELECT id, shard FROM personal_servers WHERE user_id = $1',
      [userId],
    );
    return rows[0] && { personalServerId: rows[0].id, userId, shard: rows[0].shard };
  }

  async findByConnection(connectionId: string): Promise<(DirectoryEntry & { integration: string }) | undefined> {
    const { rows } = await this.pool.query<{ id: string; user_id: string; shard: number; integration: string }>(
      'SELECT p.id, p.user_id, p.shard, c.integration FROM connections c JOIN personal_servers p ON p.id = c.personal_server_id WHERE c.id = $1',
      [connectionId],
    );
    return (
      rows[0] && {
        personalServerId: rows[0].id,
        userId: rows[0].user_id,
        shard: rows[0].shard,
        integration: rows[0].integration,
      }
    );
  }
}
