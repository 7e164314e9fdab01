import { RpcHandler } from '@context-gateway/messaging';
import { type DeleteAccountRequest, rpc } from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { AccountDeletionService } from './account-deletion.service.js';

/** `identity.v1.delete_account`: the gateway's portal, for the session's own person. */
@Controller()
export class AccountDeletionHandler {
  constructor(private readonly deletion: AccountDeletionService) {}

  @RpcHandler(rpc.identity.deleteAccount)
  async deleteAccount(@Payload() request: DeleteAccountRequest) {
    return this.deletion.delete(request.sessionToken);
  }
}
