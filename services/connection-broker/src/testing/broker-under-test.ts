import { type Clock, Clock as ClockToken } from '@context-gateway/clock';
import type { TestSchema } from '@context-gateway/database/testing';
import { NatsRpcServer, RpcErrorPassthroughFilter } from '@context-gateway/messaging';
import { Metrics, RuntimeModule } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { type INestMicroservice, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Logger } from 'pino';

import { AppModule } from '../app.module.js';
import type { Env } from '../env.js';

/**
 * The broker as it runs, minus HTTP, for integration tests: its Nest modules on the test's
 * NATS connection (a private nats-server), a throw-away Postgres schema and the test's clock.
 * `queue` names the replica; `listen()` subscribes it, `init()` keeps it in-process only.
 */
export async function brokerUnderTest(options: {
  env: Env;
  db: TestSchema;
  nc: NatsConnection;
  clock: Clock;
  logger: Logger;
  queue: string;
  /** The broker's own pool (default: the test schema's). */
  pool?: TestSchema['pool'];
}): Promise<INestMicroservice> {
  const { env, db, nc, logger } = options;
  @Module({
    imports: [
      RuntimeModule.forRoot({
        service: 'connection-broker',
        env,
        info: { name: 'connection-broker', version: 'test', databaseSchema: db.schema },
        pool: options.pool ?? db.pool,
        nc,
        logger,
        metrics: new Metrics({ service: 'connection-broker', version: 'test' }),
        closeMetrics: () => Promise.resolve(),
        shutdownTracing: async () => {},
      }),
      AppModule,
    ],
  })
  class Root {}
  const moduleRef = await Test.createTestingModule({ imports: [Root] })
    .overrideProvider(ClockToken)
    .useValue(options.clock)
    .compile();
  const instance = moduleRef.createNestMicroservice({
    strategy: new NatsRpcServer({ connection: nc, queue: options.queue, logger }),
    logger: false,
  });
  instance.useGlobalFilters(new RpcErrorPassthroughFilter());
  return instance;
}
