import { RpcHandler } from '@context-gateway/messaging';
import {
  type ListApplicationOAuthGrantsRequest,
  type ListOAuthGrantsRequest,
  type RevokeApplicationOAuthTokensRequest,
  type RevokeOAuthGrantRequest,
  rpc,
} from '@context-gateway/proto';
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

  @RpcHandler(rpc.identity.listApplicationOAuthGrants)
  async listForApplication(@Payload() req: ListApplicationOAuthGrantsRequest) {
    return { grants: await this.grants.listForApplication(req.orgId, req.applicationId) };
  }

  @RpcHandler(rpc.identity.revokeApplicationOAuthTokens)
  async revokeApplication(@Payload() req: RevokeApplicationOAuthTokensRequest) {
    return { revokedGrants: await this.grants.revokeApplication(req.orgId, req.applicationId) };
  }
}
