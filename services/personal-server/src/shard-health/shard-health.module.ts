import { Module } from '@nestjs/common';

import { ShardHealthHandler } from './shard-health.handler.js';

/** Readiness per shard, and of all shards together. */
@Module({ controllers: [ShardHealthHandler] })
export class ShardHealthModule {}
