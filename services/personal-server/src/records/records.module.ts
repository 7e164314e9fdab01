import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { DirectoryModule } from '../directory/directory.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { RecordMigrationsModule } from '../record-migrations/record-migrations.module.js';
import { RecordsHandler } from './records.handler.js';
import { RecordsRepository } from './records.repository.js';
import { RecordsService } from './records.service.js';

/** Encrypted records: sync writes, app queries. */
@Module({
  imports: [ConnectionsModule, DirectoryModule, KeysModule, RecordMigrationsModule],
  controllers: [RecordsHandler],
  providers: [RecordsRepository, RecordsService],
  exports: [RecordsService],
})
export class RecordsModule {}
