import { Module } from '@nestjs/common';

import { ConnectModule } from './connect/connect.module.js';
import { ConnectionsModule } from './connections/connections.module.js';
import { DatabaseModule } from './database/database.module.js';
import { GrantsModule } from './grants/grants.module.js';
import { IntegrationsModule } from './integrations/integrations.module.js';

/** connection-broker: integrations, connect sessions, the credential vault. One imported module per bounded context. */
@Module({ imports: [DatabaseModule, IntegrationsModule, GrantsModule, ConnectionsModule, ConnectModule] })
export class AppModule {}
