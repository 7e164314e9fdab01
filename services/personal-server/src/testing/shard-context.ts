import { Clock, systemClock } from '@context-gateway/clock';
import type { TestSchema } from '@context-gateway/database/testing';
import { NatsRpcServer, RpcClient } from '@context-gateway/messaging';
import {
  LOGGER,
  Metrics,
  PG_POOL,
  ProblemFilter,
  ReadinessService,
  SERVICE_ENV,
  SERVICE_INFO,
} from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Global, type INestApplicationContext, type INestMicroservice, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { pino } from 'pino';

import { envSchema } from '../env.js';

/**
 * One shard process for integration tests: the service's modules under test over a test
 * schema, real NATS and real key files, with what the runtime module provides in production
 * (pool, env, RPC client, clock, metrics, a silent logger). `env`: the variables that differ
 * from the defaults (MASTER_KEY_FILE at least).
 */
export async function startShardContext(
  schema: TestSchema,
  nc: NatsConnection,
  env: Record<string, string>,
  modules: Type[],
): Promise<INestApplicationContext> {
  return NestFactory.createApplicationContext(shardModule(schema, nc, env, modules).module, { logger: false });
}

/**
 * The same shard answering its NATS subjects as the service does: NatsRpcServer with the
 * shard's number, the runtime's exception filter. It must match the service's own wiring,
 * libs/service-kit/src/runtime/bootstrap.ts (`connectMicroservice`, which inherits the HTTP
 * app's global filter): change both together. For specs of the handlers themselves, over real
 * NATS: use a nats-server of the spec's own, or another file's shard answers too.
 */
export async function startShardServer(
  schema: TestSchema,
  nc: NatsConnection,
  env: Record<string, string>,
  modules: Type[],
): Promise<INestMicroservice> {
  const logger = pino({ level: 'silent' });
  const { module, shardId } = shardModule(schema, nc, env, modules);
  const app = await NestFactory.createMicroservice(module, {
    strategy: new NatsRpcServer({ connection: nc, queue: 'personal-server', logger, shard: shardId }),
    logger: false,
  });
  app.useGlobalFilters(new ProblemFilter(logger));
  await app.listen();
  return app;
}

/** The shard's modules over the test runtime, and the shard number its env gives. */
function shardModule(
  schema: TestSchema,
  nc: NatsConnection,
  env: Record<string, string>,
  modules: Type[],
): { module: Type; shardId: number } {
  const parsed = envSchema.parse({ LOG_LEVEL: 'silent', ...env });
  @Global()
  @Module({
    providers: [
      { provide: PG_POOL, useValue: schema.pool },
      { provide: SERVICE_ENV, useValue: parsed },
      { provide: SERVICE_INFO, useValue: { name: 'personal-server', version: 'test', databaseSchema: schema.schema } },
      { provide: RpcClient, useValue: new RpcClient(nc) },
      // Real time: updated_at comes from Postgres' clock, which the change-feed tests compare against.
      { provide: Clock, useValue: systemClock },
      { provide: Metrics, useValue: new Metrics({ service: 'personal-server', version: 'test' }) },
      { provide: LOGGER, useValue: pino({ level: 'silent' }) },
      ReadinessService,
    ],
    exports: [PG_POOL, SERVICE_ENV, SERVICE_INFO, RpcClient, ReadinessService, Clock, Metrics, LOGGER],
  })
  class TestRuntime {}
  @Module({ imports: [TestRuntime, ...modules] })
  class ShardUnderTest {}
  return { module: ShardUnderTest, shardId: parsed.SHARD_ID };
}
