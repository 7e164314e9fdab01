import { Metrics, SERVICE_ENV } from '@context-gateway/service-kit';
import { Module } from '@nestjs/common';

import type { Env } from '../env.js';
import { GrantsModule } from '../grants/grants.module.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { AccessTokensService } from './access-tokens.service.js';
import { ConnectionDeletionsMetrics } from './connection-deletions.metrics.js';
import { ConnectionDeletionsRelay } from './connection-deletions.relay.js';
import { ConnectionDeletionsRepository } from './connection-deletions.repository.js';
import { ConnectionsHandler } from './connections.handler.js';
import { ConnectionsRepository } from './connections.repository.js';
import { ConnectionsService } from './connections.service.js';

/**
 * Connections: reading one as an app, token access with refresh for the data plane, deletion.
 * The credential vault lives here because only this context seals or opens credentials; the
 * connect flow stores a credential through ConnectionsService, the one export.
 */
@Module({
  imports: [GrantsModule],
  controllers: [ConnectionsHandler],
  providers: [
    ConnectionsRepository,
    ConnectionsService,
    ConnectionDeletionsRepository,
    ConnectionDeletionsRelay,
    ConnectionDeletionsMetrics,
    AccessTokensService,
    {
      provide: CredentialVault,
      inject: [SERVICE_ENV, ConnectionsRepository, Metrics],
      // A fresh keyring is refused while credentials sealed under the missing one are stored.
      useFactory: (env: Env, connections: ConnectionsRepository, metrics: Metrics) =>
        CredentialVault.open(
          env.MASTER_KEY_FILE,
          env.MASTER_KEY_CREATE_IF_MISSING,
          () => connections.countSealedCredentials(),
          metrics.keyStore,
        ),
    },
  ],
  exports: [ConnectionsService],
})
export class ConnectionsModule {}
