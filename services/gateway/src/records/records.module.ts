import { Module } from '@nestjs/common';

import { PolicyModule } from '../policy/policy.module.js';
import { RecordsController } from './records.controller.js';
import { RecordsPolicy } from './records-policy.js';
import { ShardRouter } from './shard-router.js';

/** Records queries (three-layer policy, then the owning Personal Server shard); grant give-up and user revocation. */
@Module({
  imports: [PolicyModule],
  controllers: [RecordsController],
  providers: [ShardRouter, RecordsPolicy],
  // The portal's export reads the person's own records from the owning shard too.
  exports: [ShardRouter],
})
export class RecordsModule {}
