import { Module } from '@nestjs/common';

import { WebhookOutboxModule } from '../webhooks/webhook-outbox.js';
import { GrantEventsRelay } from './grant-events.relay.js';
import { GrantEventsRepository } from './grant-events.repository.js';
import { GrantFollowers } from './grant-followers.service.js';
import { GrantsHandler } from './grants.handler.js';
import { GrantsRepository } from './grants.repository.js';
import { GrantsService } from './grants.service.js';

/**
 * Grants: an app's consented access to a connection; revocation; what follows each change.
 * Only GrantsService leaves this module: the outbox and the followers stay behind it, so no
 * other context can change a grant without its event.
 */
@Module({
  imports: [WebhookOutboxModule],
  controllers: [GrantsHandler],
  providers: [GrantsRepository, GrantsService, GrantFollowers, GrantEventsRepository, GrantEventsRelay],
  exports: [GrantsService],
})
export class GrantsModule {}
