import { RpcHandler } from '@context-gateway/messaging';
import { type ListOAuthGrantsRequest, type RevokeOAuthGrantRequest, rpc } from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { OAuthGrantsService } from './oauth-grants.service.js';

@Controller()
export class OAuthGrantsHandler {
  constructor(private readonly grants: OAuthGrantsService) {}

  @RpcHandler(rpc.identity.listOAuthGrants)
  async list(@Payload() req: ListOAuthGrantsRequest) {
    return { grants: await this.grants.list(req.userId) };
  }

  @RpcHandler(rpc.identity.revokeOAuthGrant)
  async revoke(@Payload() req: RevokeOAuthGrantRequest) {
    return { grant: await this.grants.revoke(req.userId, req.grantId) };
  }
}
