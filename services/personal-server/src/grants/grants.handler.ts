import { AppError } from '@context-gateway/errors';
import { RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import { type RegisterGrantRequest, type RevokeGrantRequest, rpc } from '@context-gateway/proto';
import { Controller, UseInterceptors } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { GrantsService, toGrantMessage } from './grants.service.js';

/**
 * `ps.v1.register_grant` / `ps.v1.revoke_grant`: the broker's write side. A registration
 * needs the person's passkey signature over the grant (GrantsService.register).
 */
@Controller()
@UseInterceptors(StorableStringsInterceptor)
export class GrantsHandler {
  constructor(private readonly grants: GrantsService) {}

  @RpcHandler(rpc.personalServer.registerGrant)
  async register(@Payload() request: RegisterGrantRequest) {
    // The contract's validation requires it; proto3 cannot mark a message field required.
    if (!request.grant)
      throw new AppError('validation_failed', 'A grant is required', [{ path: 'grant', message: 'must be set' }]);
    const { row, shard } = await this.grants.register(request.grant, request.consent);
    return { grant: toGrantMessage(row), shard };
  }

  @RpcHandler(rpc.personalServer.revokeGrant)
  async revoke(@Payload() request: RevokeGrantRequest) {
    return { grant: toGrantMessage(await this.grants.revoke(request)) };
  }
}
