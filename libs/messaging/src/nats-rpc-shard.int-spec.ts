import 'reflect-metadata';

import { randomUUID } from 'node:crypto';

import { createLogger } from '@context-gateway/observability';
import { defineShardRpc, GetReadinessResponseSchema, SyncJobSchema } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Controller, type INestMicroservice, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx } from '@nestjs/microservices';

import { NatsRpcServer } from './nats-rpc.server.js';
import { RpcClient } from './rpc-client.js';
import { RpcContext } from './rpc-context.js';
import { RpcHandler } from './rpc-handler.decorator.js';

// Sharded contracts: one descriptor, one subject per shard; each process answers only its own.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = `test${randomUUID().slice(0, 8)}`;
const whoami = defineShardRpc({
  callers: ['gateway'],
  prefix,
  verb: 'whoami',
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  timeoutMs: 1_000,
});

@Controller()
class WhoAmIHandler {
  @RpcHandler(whoami)
  whoami(@Ctx() ctx: RpcContext) {
    return { service: ctx.subject };
  }
}

@Module({ controllers: [WhoAmIHandler] })
class ShardModule {}

const logger = createLogger({ service: 'messaging-shard-test', level: 'silent' });
let nc: NatsConnection;
const apps: INestMicroservice[] = [];

async function startShard(shard: number | undefined): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice(ShardModule, {
    strategy: new NatsRpcServer({ connection: nc, queue: prefix, logger, shard }),
    logger: false,
  });
  apps.push(app);
  await app.listen();
  return app;
}

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  await startShard(0);
  await startShard(1);
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await nc.drain();
});

describe('sharded request/reply', () => {
  it('names one subject per shard', () => {
    expect(whoami.shardSubject?.(3)).toBe(`${prefix}.v1.shard.3.whoami`);
    expect(whoami.subject).toBe(`${prefix}.v1.shard.0.whoami`);
    expect(() => whoami.shardSubject?.(-1)).toThrow();
  });

  it('delivers each request to the shard it names, never to another', async () => {
    const client = new RpcClient(nc);
    for (let i = 0; i < 5; i += 1) {
      expect((await client.request(whoami, {}, { subject: whoami.shardSubject!(1) })).service).toBe(
        `${prefix}.v1.shard.1.whoami`,
      );
      expect((await client.request(whoami, {}, { subject: whoami.shardSubject!(0) })).service).toBe(
        `${prefix}.v1.shard.0.whoami`,
      );
    }
  });

  it('a shard nobody runs is service_unavailable, not another shard answering', async () => {
    await expect(new RpcClient(nc).request(whoami, {}, { subject: whoami.shardSubject!(7) })).rejects.toMatchObject({
      code: 'service_unavailable',
    });
  });

  it('refuses to start a sharded handler in a process without a shard', async () => {
    await expect(startShard(undefined)).rejects.toThrow(/needs the server's shard option/);
  });
});
