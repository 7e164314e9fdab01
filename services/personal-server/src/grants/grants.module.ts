import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { PasskeysModule } from '../passkeys/passkeys.module.js';
import { GrantsHandler } from './grants.handler.js';
import { GrantsRepository } from './grants.repository.js';
import { GrantsService } from './grants.service.js';

/** Apps' grants on connections: registration and immediate revocation. */
@Module({
  imports: [ConnectionsModule, KeysModule, PasskeysModule],
  controllers: [GrantsHandler],
  providers: [GrantsRepository, GrantsService],
  exports: [GrantsService],
})
export class GrantsModule {}
