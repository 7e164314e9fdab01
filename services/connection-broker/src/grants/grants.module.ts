import { Module } from '@nestjs/common';

import { GrantEventsRelay } from './grant-events.relay.js';
import { GrantEventsRepository } from './grant-events.repository.js';
import { GrantFollowers } from './grant-followers.service.js';
import { GrantsHandler } from './grants.handler.js';
import { GrantsRepository } from './grants.repository.js';
import { GrantsService } from './grants.service.js';

/** Grants: an app's consented access to a connection; revocation; what follows each change. */
@Module({
  controllers: [GrantsHandler],
  providers: [GrantsRepository, GrantsService, GrantFollowers, GrantEventsRepository, GrantEventsRelay],
  exports: [GrantsRepository, GrantFollowers, GrantEventsRelay],
})
export class GrantsModule {}
