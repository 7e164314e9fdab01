import { Global, Module } from '@nestjs/common';

import { AccessTokens } from './access-tokens.js';
import { OAuthEdge } from './oauth-edge.js';

/**
 * The gateway's side of OAuth: the authorization server's public paths, the resource's
 * metadata, and access tokens accepted beside API keys (global: the auth guard uses them).
 */
@Global()
@Module({ providers: [OAuthEdge, AccessTokens], exports: [AccessTokens] })
export class OAuthModule {}
