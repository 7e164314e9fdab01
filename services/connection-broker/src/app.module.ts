import { StorableStringsInterceptor } from '@context-gateway/messaging';
import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';

import { ConnectModule } from './connect/connect.module.js';
import { ConnectionsModule } from './connections/connections.module.js';
import { DatabaseModule } from './database/database.module.js';
import { GrantsModule } from './grants/grants.module.js';
import { IntegrationsModule } from './integrations/integrations.module.js';
import { PeopleModule } from './people/person-sessions.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';

/** connection-broker: integrations, connect sessions, the credential vault, webhooks to applications. One imported module per bounded context. */
@Module({
  imports: [
    DatabaseModule,
    PeopleModule,
    IntegrationsModule,
    GrantsModule,
    ConnectionsModule,
    ConnectModule,
    WebhooksModule,
  ],
  // Every NATS request's strings are held to what Postgres can store, before any handler runs.
  providers: [{ provide: APP_INTERCEPTOR, useClass: StorableStringsInterceptor }],
})
export class AppModule {}
