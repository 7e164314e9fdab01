import { Module } from '@nestjs/common';

import { ConnectionsModule } from './connections/connections.module.js';
import { DirectoryModule } from './directory/directory.module.js';
import { GrantChangesModule } from './grants/grant-changes.module.js';
import { GrantsModule } from './grants/grants.module.js';
import { KeysModule } from './keys/keys.module.js';
import { PasskeysModule } from './passkeys/passkeys.module.js';
import { RecordMigrationsModule } from './record-migrations/record-migrations.module.js';
import { RecordsModule } from './records/records.module.js';
import { ShardHealthModule } from './shard-health/shard-health.module.js';

/** personal-server: users' encrypted Personal Servers (one shard per process). One imported module per bounded context. */
@Module({
  imports: [
    KeysModule,
    DirectoryModule,
    ConnectionsModule,
    PasskeysModule,
    GrantsModule,
    GrantChangesModule,
    RecordsModule,
    RecordMigrationsModule,
    ShardHealthModule,
  ],
})
export class AppModule {}
