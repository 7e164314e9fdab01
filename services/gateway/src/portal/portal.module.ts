import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { RecordsModule } from '../records/records.module.js';
import { SyncModule } from '../sync/sync.module.js';
import { PortalController } from './portal.controller.js';
import { PortalService } from './portal.service.js';
import { PortalExport } from './portal-export.js';

/** The person's portal (/account): their connections, grants and access log, in a browser. */
@Module({
  imports: [AccountsModule, RecordsModule, SyncModule],
  controllers: [PortalController],
  providers: [PortalService, PortalExport],
})
export class PortalModule {}
