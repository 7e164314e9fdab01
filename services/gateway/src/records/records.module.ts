import { Module } from '@nestjs/common';
import { RecordsController } from './records.controller.js';
import { ShardRouter } from './shard-router.js';

/** Records queries routed to the owning Personal Server shard; grant give-up and user revocation. */
@Module({ controllers: [RecordsController], providers: [ShardRouter] })
export class RecordsModule {}
