import { RpcHandler } from '@context-gateway/messaging';
import {
  type AuthenticateAuditorRequest,
  type CreateAuditorRequest,
  type RevokeAuditorRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { AuditorsService } from './auditors.service.js';

/** Auditor credentials over NATS: created through the gateway's admin API, checked by its auditor guard. */
@Controller()
export class AuditorsHandler {
  constructor(private readonly auditors: AuditorsService) {}

  @RpcHandler(rpc.audit.createAuditor)
  create(@Payload() req: CreateAuditorRequest) {
    return this.auditors.create(req);
  }

  @RpcHandler(rpc.audit.revokeAuditor)
  revoke(@Payload() req: RevokeAuditorRequest) {
    return this.auditors.revoke(req);
  }

  @RpcHandler(rpc.audit.authenticateAuditor)
  authenticate(@Payload() req: AuthenticateAuditorRequest) {
    return this.auditors.authenticate(req);
  }
}
