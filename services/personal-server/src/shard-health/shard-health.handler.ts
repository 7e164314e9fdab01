import { hostname } from 'node:os';

import { pingDatabase } from '@context-gateway/database';
import { AppError } from '@context-gateway/errors';
import { RpcClient, RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { PG_POOL, ReadinessService, SERVICE_ENV, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Controller, Inject, type OnModuleInit, UseInterceptors } from '@nestjs/common';
import type { Pool } from 'pg';

import type { Env } from '../env.js';

/**
 * Per-shard readiness. `ps.v1.health` reaches one shard (queue group), so on its own it
 * would say "personal-server is up" while another shard is down and its users get errors.
 * Each shard therefore answers `ps.v1.shard.<n>.health` with its own checks, and adds a
 * `shards` readiness check that asks every configured shard: the gateway's /v1/health line
 * for personal-server is ready only when all of them are.
 */
@Controller()
@UseInterceptors(StorableStringsInterceptor)
export class ShardHealthHandler implements OnModuleInit {
  constructor(
    private readonly readiness: ReadinessService,
    private readonly rpcClient: RpcClient,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(SERVICE_INFO) private readonly info: ServiceInfo,
    @Inject(PG_POOL) private readonly pool: Pool,
  ) {}

  onModuleInit(): void {
    this.readiness.register('shards', async () => {
      const down: string[] = [];
      await Promise.all(
        Array.from({ length: this.env.SHARD_COUNT }, async (_, shard) => {
          if (shard === this.env.SHARD_ID) return; // our own checks are the other lines
          const descriptor = rpc.personalServer.shardHealth;
          try {
            if (!descriptor.shardSubject)
              throw new AppError('internal', `${descriptor.subject} is not a sharded contract`);
            const reply = await this.rpcClient.request(
              descriptor,
              {},
              { subject: descriptor.shardSubject(shard), timeoutMs: 800 },
            );
            if (!reply.ready) down.push(`shard ${shard} not ready`);
          } catch (error) {
            down.push(`shard ${shard}: ${AppError.from(error).code}`);
          }
        }),
      );
      return { up: down.length === 0, detail: down.join('; ') };
    });
  }

  /**
   * This shard's own dependencies only (not the `shards` check: shards asking each other
   * would recurse). NATS is evidently up: the question arrived over it.
   */
  @RpcHandler(rpc.personalServer.shardHealth)
  async health() {
    const database = await pingDatabase(this.pool, 800);
    const checks = [
      { name: 'database', up: database, detail: database ? '' : 'database not reachable' },
      { name: 'nats', up: true, detail: '' },
    ];
    return {
      service: `personal-server#${this.env.SHARD_ID}`,
      ready: database,
      checks,
      uptimeSeconds: process.uptime(),
      version: this.info.version,
      instance: `${hostname()}:${process.pid}`,
    };
  }
}
