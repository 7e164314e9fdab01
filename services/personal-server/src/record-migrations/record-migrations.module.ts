import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { DirectoryModule } from '../directory/directory.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { RecordMigrationsRepository } from './record-migrations.repository.js';
import { RecordMigrationsService } from './record-migrations.service.js';

/** Migrations of stored records to the record catalog's current version (docs/record-types.md). */
@Module({
  imports: [ConnectionsModule, DirectoryModule, KeysModule],
  providers: [RecordMigrationsRepository, RecordMigrationsService],
  exports: [RecordMigrationsService],
})
export class RecordMigrationsModule {}
