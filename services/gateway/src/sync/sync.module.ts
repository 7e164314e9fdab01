import { Module } from '@nestjs/common';

import { SyncController } from './sync.controller.js';
import { SyncService } from './sync.service.js';

/** Sync status, sync now, export imports and source webhooks; the sync-worker does the work. */
@Module({
  controllers: [SyncController],
  providers: [SyncService],
  // The portal's upload of a person's own export goes through the same import.
  exports: [SyncService],
})
export class SyncModule {}
