import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { DirectoryModule } from '../directory/directory.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { PasskeysHandler } from './passkeys.handler.js';
import { PinnedPasskeysRepository } from './pinned-passkeys.repository.js';
import { PinnedPasskeysService } from './pinned-passkeys.service.js';

/** The passkeys a Personal Server trusts, and the signatures (consents, endorsements) it honours. */
@Module({
  imports: [ConnectionsModule, DirectoryModule, KeysModule],
  controllers: [PasskeysHandler],
  providers: [PinnedPasskeysRepository, PinnedPasskeysService],
  exports: [PinnedPasskeysService],
})
export class PasskeysModule {}
