import { RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import {
  type CheckApprovalRequest,
  type CheckConsentRequest,
  type ListPinnedPasskeysRequest,
  type PinPasskeyRequest,
  rpc,
  type UnpinPasskeyRequest,
} from '@context-gateway/proto';
import { Controller, UseInterceptors } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { PinnedPasskeysService } from './pinned-passkeys.service.js';

/** `ps.v1.check_consent`, `check_approval`, `pin_passkey`, `unpin_passkey`, `list_pinned_passkeys`: any shard (shared tables). */
@Controller()
@UseInterceptors(StorableStringsInterceptor)
export class PasskeysHandler {
  constructor(private readonly passkeys: PinnedPasskeysService) {}

  @RpcHandler(rpc.personalServer.checkConsent)
  async checkConsent(@Payload() m: CheckConsentRequest) {
    const credentialId = await this.passkeys.checkConsent(
      {
        userId: m.userId,
        orgId: m.orgId,
        applicationId: m.applicationId,
        integration: m.integration,
        scopes: m.scopes,
      },
      m.consent,
    );
    return { credentialId };
  }

  @RpcHandler(rpc.personalServer.checkApproval)
  async checkApproval(@Payload() m: CheckApprovalRequest) {
    const credentialId = await this.passkeys.checkApproval(
      {
        userId: m.userId,
        orgId: m.orgId,
        applicationId: m.applicationId,
        capability: m.capability,
        method: m.method,
        name: m.name,
        callHash: m.callHash,
      },
      m.approval,
    );
    return { credentialId };
  }

  @RpcHandler(rpc.personalServer.pinPasskey)
  async pin(@Payload() m: PinPasskeyRequest) {
    return { pinned: await this.passkeys.pin(m.userId, m.credentialId, m.endorsement) };
  }

  @RpcHandler(rpc.personalServer.unpinPasskey)
  async unpin(@Payload() m: UnpinPasskeyRequest) {
    return { unpinned: await this.passkeys.unpin(m.userId, m.credentialId) };
  }

  @RpcHandler(rpc.personalServer.listPinnedPasskeys)
  async list(@Payload() m: ListPinnedPasskeysRequest) {
    return this.passkeys.list(m.userId);
  }
}
