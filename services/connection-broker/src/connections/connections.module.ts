import { Module } from '@nestjs/common';

import { GrantsModule } from '../grants/grants.module.js';
import { ConnectionsHandler } from './connections.handler.js';
import { ConnectionsRepository } from './connections.repository.js';
import { ConnectionsService } from './connections.service.js';

/** Connections: reading one as an app, token access with refresh for the data plane, deletion. */
@Module({
  imports: [GrantsModule],
  controllers: [ConnectionsHandler],
  providers: [ConnectionsRepository, ConnectionsService],
  exports: [ConnectionsRepository],
})
export class ConnectionsModule {}
