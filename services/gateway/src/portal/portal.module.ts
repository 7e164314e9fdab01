import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { PortalController } from './portal.controller.js';
import { PortalService } from './portal.service.js';

/** The person's portal (/account): their connections, grants and access log, in a browser. */
@Module({ imports: [AccountsModule], controllers: [PortalController], providers: [PortalService] })
export class PortalModule {}
