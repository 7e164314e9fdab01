import { RpcHandler } from '@context-gateway/messaging';
import { type RevokeConnectionGrantRequest, rpc } from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { PersonSessions } from '../people/person-sessions.js';
import { GrantsService } from './grants.service.js';

@Controller()
export class GrantsHandler {
  constructor(
    private readonly grants: GrantsService,
    private readonly people: PersonSessions,
  ) {}

  @RpcHandler(rpc.broker.revokeGrant)
  async revoke(@Payload() m: RevokeConnectionGrantRequest) {
    const grantId = await this.grants.revoke({
      connectionId: m.connectionId,
      applicationId: m.applicationId,
      // The person path proves its person; the application path names its own organization.
      userId: m.personSessionToken ? await this.people.recentUserId(m.personSessionToken) : undefined,
      orgId: m.orgId || undefined,
    });
    return { grantId };
  }
}
