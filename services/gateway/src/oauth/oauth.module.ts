import { Global, Module } from '@nestjs/common';

import { AccessTokens } from './access-tokens.js';
import { OAuthEdge } from './oauth-edge.js';
import { AdminOAuthGrantsController, OAuthGrantsController } from './oauth-grants.controller.js';

/**
 * The gateway's side of OAuth: the authorization server's public paths, the resource's
 * metadata, and access tokens accepted beside API keys (global: the auth guard uses them).
 */
@Global()
@Module({
  controllers: [OAuthGrantsController, AdminOAuthGrantsController],
  providers: [OAuthEdge, AccessTokens],
  exports: [AccessTokens],
})
export class OAuthModule {}
