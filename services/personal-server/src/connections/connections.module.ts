import { Module } from '@nestjs/common';

import { DirectoryModule } from '../directory/directory.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { ConnectionsHandler } from './connections.handler.js';
import { ConnectionsRepository } from './connections.repository.js';
import { ConnectionsService } from './connections.service.js';

/** Connections at the Personal Server: creation with a data key, deletion by crypto-shredding. */
@Module({
  imports: [DirectoryModule, KeysModule],
  controllers: [ConnectionsHandler],
  providers: [ConnectionsRepository, ConnectionsService],
  exports: [ConnectionsService, ConnectionsRepository],
})
export class ConnectionsModule {}
