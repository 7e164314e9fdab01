import { LOGGER, NATS_CONNECTION } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Global, Module } from '@nestjs/common';
import type { Logger } from 'pino';

import { ControlHead } from '../policy/control-head.js';
import { AccessTokens } from './access-tokens.js';
import { OAuthEdge } from './oauth-edge.js';
import { AdminOAuthGrantsController, OAuthGrantsController } from './oauth-grants.controller.js';
import { TokenRevocations } from './token-revocations.js';

/**
 * The gateway's side of OAuth: the authorization server's public paths, the resource's
 * metadata, and access tokens accepted beside API keys (global: the auth guard uses them).
 */
@Global()
@Module({
  controllers: [OAuthGrantsController, AdminOAuthGrantsController],
  providers: [
    OAuthEdge,
    AccessTokens,
    // One reader of identity's revocations for access tokens and remembered API keys (started by AccessTokens).
    {
      provide: TokenRevocations,
      inject: [NATS_CONNECTION, ControlHead, LOGGER],
      useFactory: (nc: NatsConnection, head: ControlHead, logger: Logger) => new TokenRevocations(nc, head, logger),
    },
  ],
  exports: [AccessTokens, TokenRevocations],
})
export class OAuthModule {}
