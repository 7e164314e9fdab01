import { Module } from '@nestjs/common';

import { RecordWriter } from './record-writer.js';
import { SourceCredentials } from './source-credentials.js';
import { SyncMetrics } from './sync.metrics.js';
import { SyncJobsConsumer } from './sync-jobs.consumer.js';
import { SyncRunsHandler } from './sync-runs.handler.js';
import { SyncRunsService } from './sync-runs.service.js';
import { SyncScheduler } from './sync-scheduler.js';
import { SyncStateRepository } from './sync-state.repository.js';

/** Sync runs: the job consumer, the scheduler, and the state the gateway reads. */
@Module({
  controllers: [SyncRunsHandler],
  providers: [
    SyncStateRepository,
    SourceCredentials,
    RecordWriter,
    SyncRunsService,
    SyncJobsConsumer,
    SyncScheduler,
    SyncMetrics,
  ],
})
export class SyncRunsModule {}
