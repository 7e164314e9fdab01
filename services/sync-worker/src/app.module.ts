import { Module } from '@nestjs/common';

import { DatabaseModule } from './database/database.module.js';
import { SyncRunsModule } from './sync-runs/sync-runs.module.js';

/** sync-worker: sync jobs from sources into Personal Servers. One imported module per bounded context. */
@Module({ imports: [DatabaseModule, SyncRunsModule] })
export class AppModule {}
