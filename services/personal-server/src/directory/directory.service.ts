import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';

import type { Env } from '../env.js';
import { type DirectoryEntry, DirectoryRepository } from './directory.repository.js';
import { rendezvousShard } from './rendezvous.js';

/**
 * Which shard serves which user. A new user is placed by rendezvous hashing over the
 * configured shards and the placement is recorded; from then on the record, not the
 * hash, decides (so a changed SHARD_COUNT moves nobody until `rebalance` runs).
 */
@Injectable()
export class DirectoryService {
  constructor(
    private readonly repository: DirectoryRepository,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  get shardId(): number {
    return this.env.SHARD_ID;
  }

  /** Idempotent: the user's existing server, or a new one on its rendezvous shard. */
  provision(userId: string, db: PoolClient | undefined = undefined): Promise<DirectoryEntry & { created: boolean }> {
    return this.repository.insertIfAbsent(
      db ?? this.repository.pool,
      userId,
      rendezvousShard(userId, this.env.SHARD_COUNT),
    );
  }

  async locateConnection(connectionId: string): Promise<DirectoryEntry & { integration: string }> {
    const entry = await this.repository.findByConnection(connectionId);
    if (!entry) throw new AppError('connection_not_found');
    return entry;
  }
}
