import { Module } from '@nestjs/common';

import { OAuthEdge } from './oauth-edge.js';

/** The gateway's side of OAuth: the authorization server's public paths and the resource's metadata (docs/identity.md). */
@Module({ providers: [OAuthEdge] })
export class OAuthModule {}
