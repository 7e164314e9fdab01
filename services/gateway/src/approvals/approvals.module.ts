import { Clock } from '@context-gateway/clock';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Module } from '@nestjs/common';
import type { Pool } from 'pg';

import { AccountsModule } from '../accounts/accounts.module.js';
import type { Env } from '../env.js';
import { ApprovalsController } from './approvals.controller.js';
import { ApprovalsRepository } from './approvals.repository.js';
import { ApprovalPasskeys, ApprovalsService } from './approvals.service.js';

/** A person's passkeys come from identity, their only keeper: a passkey it no longer holds approves nothing. */
class IdentityPasskeys extends ApprovalPasskeys {
  constructor(private readonly rpcClient: RpcClient) {
    super();
  }

  async passkeys(userId: string) {
    return (await this.rpcClient.request(rpc.identity.listUserPasskeys, { userId })).passkeys;
  }
}

/** Approvals of risky MCP tool calls: the store gateway mode settles held calls against, and the person's page. */
@Module({
  imports: [AccountsModule],
  controllers: [ApprovalsController],
  providers: [
    {
      provide: ApprovalsService,
      inject: [PG_POOL, RpcClient, Clock, SERVICE_ENV],
      useFactory: (pool: Pool, rpcClient: RpcClient, clock: Clock, env: Env) =>
        new ApprovalsService(new ApprovalsRepository(pool), new IdentityPasskeys(rpcClient), clock, {
          publicUrl: env.GATEWAY_PUBLIC_URL,
          ttlMs: env.MCP_APPROVAL_TTL_MS,
        }),
    },
  ],
  exports: [ApprovalsService],
})
export class ApprovalsModule {}
