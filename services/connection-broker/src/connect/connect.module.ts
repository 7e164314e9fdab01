import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { GrantsModule } from '../grants/grants.module.js';
import { ConnectHandler } from './connect.handler.js';
import { ConnectService } from './connect.service.js';
import { ConnectSessionsRepository } from './connect-sessions.repository.js';

/** The connect flow: connect sessions, consent decisions, the source's authorization callback. */
@Module({
  imports: [ConnectionsModule, GrantsModule],
  controllers: [ConnectHandler],
  providers: [ConnectSessionsRepository, ConnectService],
})
export class ConnectModule {}
