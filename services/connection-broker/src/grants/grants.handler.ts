import { RpcHandler } from '@context-gateway/messaging';
import { type RevokeConnectionGrantRequest, rpc } from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { GrantsService } from './grants.service.js';

@Controller()
export class GrantsHandler {
  constructor(private readonly grants: GrantsService) {}

  @RpcHandler(rpc.broker.revokeGrant)
  async revoke(@Payload() m: RevokeConnectionGrantRequest) {
    const grantId = await this.grants.revoke({
      connectionId: m.connectionId,
      applicationId: m.applicationId,
      userId: m.userId || undefined,
      orgId: m.orgId || undefined,
    });
    return { grantId };
  }
}
