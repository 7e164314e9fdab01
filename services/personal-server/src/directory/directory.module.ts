import { Module } from '@nestjs/common';

import { DirectoryHandler } from './directory.handler.js';
import { DirectoryRepository } from './directory.repository.js';
import { DirectoryService } from './directory.service.js';

/** The user → shard directory: provisioning, lookups, rebalance. */
@Module({
  controllers: [DirectoryHandler],
  providers: [DirectoryRepository, DirectoryService],
  exports: [DirectoryService, DirectoryRepository],
})
export class DirectoryModule {}
