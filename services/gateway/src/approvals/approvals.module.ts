import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import type { ApprovalStatement } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Module } from '@nestjs/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import { AccountsModule } from '../accounts/accounts.module.js';
import { AuditRecorder } from '../audit/audit-recorder.js';
import type { Env } from '../env.js';
import { ApprovalsController } from './approvals.controller.js';
import { ApprovalsRepository } from './approvals.repository.js';
import { ApprovalPasskeys, ApprovalsService } from './approvals.service.js';

/**
 * The passkeys that approve are those the person's Personal Server pinned, and it verifies
 * the assertion itself (as for a consent): identity, or anyone holding the person's session,
 * can add a passkey there, but not one that approves.
 */
class PinnedPasskeys extends ApprovalPasskeys {
  constructor(private readonly rpcClient: RpcClient) {
    super();
  }

  async trusted(userId: string) {
    const pins = await this.rpcClient.request(rpc.personalServer.listPinnedPasskeys, { userId });
    return pins.pinned ? pins.credentialIds : [];
  }

  async verify(statement: ApprovalStatement, assertionJson: string) {
    const { nonce, notAfter, ...terms } = statement;
    const { credentialId } = await this.rpcClient.request(rpc.personalServer.checkApproval, {
      ...terms,
      approval: { nonce, notAfter: timestampFromDate(notAfter), assertionJson },
    });
    return credentialId;
  }
}

/** Approvals of risky MCP tool calls: the store gateway mode settles held calls against, and the person's page. */
@Module({
  imports: [AccountsModule],
  controllers: [ApprovalsController],
  providers: [
    {
      provide: ApprovalsService,
      inject: [PG_POOL, RpcClient, AuditRecorder, Clock, SERVICE_ENV, LOGGER],
      useFactory: (pool: Pool, rpcClient: RpcClient, recorder: AuditRecorder, clock: Clock, env: Env, logger: Logger) =>
        new ApprovalsService(new ApprovalsRepository(pool), new PinnedPasskeys(rpcClient), recorder, clock, {
          publicUrl: env.GATEWAY_PUBLIC_URL,
          ttlMs: env.MCP_APPROVAL_TTL_MS,
          onOutcomeLost: (approvalId, error) =>
            logger.error(
              { approvalId, errorCode: AppError.from(error).code },
              'the audit outcome of a committed approval answer could not be stored',
            ),
        }),
    },
  ],
  exports: [ApprovalsService],
})
export class ApprovalsModule {}
