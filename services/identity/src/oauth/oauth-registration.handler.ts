import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type IssueOAuthRegistrationTokenRequest,
  type ListOAuthRegistrationTokensRequest,
  type RevokeOAuthRegistrationTokenRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { OAuthRegistrationToken } from '../generated/prisma/client.js';
import { OAuthRegistrationService } from './oauth-registration.service.js';

/** A token as the wire shows it: never the token itself, nor its hash. */
const toMessage = (t: OAuthRegistrationToken) => ({
  id: t.id,
  orgId: t.orgId,
  issuedBy: t.createdBy,
  singleUse: t.singleUse,
  expiresAt: timestampFromDate(t.expiresAt),
  createdAt: timestampFromDate(t.createdAt),
  ...(t.revokedAt ? { revokedAt: timestampFromDate(t.revokedAt) } : {}),
  useCount: t.useCount,
});

@Controller()
export class OAuthRegistrationHandler {
  constructor(private readonly registration: OAuthRegistrationService) {}

  @RpcHandler(rpc.identity.issueOAuthRegistrationToken)
  async issue(@Payload() req: IssueOAuthRegistrationTokenRequest) {
    const { registrationToken, token } = await this.registration.issue(req);
    return { registrationToken: toMessage(registrationToken), token };
  }

  @RpcHandler(rpc.identity.listOAuthRegistrationTokens)
  async list(@Payload() req: ListOAuthRegistrationTokensRequest) {
    return { registrationTokens: (await this.registration.list(req.orgId)).map(toMessage) };
  }

  @RpcHandler(rpc.identity.revokeOAuthRegistrationToken)
  async revoke(@Payload() req: RevokeOAuthRegistrationTokenRequest) {
    return { registrationToken: toMessage(await this.registration.revoke(req.orgId, req.registrationTokenId)) };
  }
}
