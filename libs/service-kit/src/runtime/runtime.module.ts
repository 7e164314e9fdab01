import { Clock, systemClock } from '@context-gateway/clock';
import { pingDatabase } from '@context-gateway/database';
import { JetStreamPublisher, NatsHealth, RpcClient } from '@context-gateway/messaging';
import type { ServiceName } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  type BeforeApplicationShutdown,
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import type { RuntimeEnv } from '../config/env.js';
import { HealthController } from '../health/health.controller.js';
import { createHealthHandler } from '../health/health.handler.js';
import { ReadinessService } from '../health/readiness.service.js';
import { Metrics } from '../metrics/metrics.js';
import { LOGGER, NATS_CONNECTION, PG_POOL, SERVICE_ENV, SERVICE_INFO, type ServiceInfo } from './tokens.js';

export interface RuntimeDeps {
  service: ServiceName;
  info: ServiceInfo;
  env: RuntimeEnv;
  pool: Pool;
  nc: NatsConnection;
  logger: Logger;
  /** The process's registry; served on the metrics listener. */
  metrics: Metrics;
  /** Stops the metrics listener; after everything else has drained, so the last scrapes still answer. */
  closeMetrics: () => Promise<void>;
  /** Flushes spans; last thing before exit. */
  shutdownTracing: () => Promise<void>;
}

const RUNTIME_DEPS = Symbol('RUNTIME_DEPS');

/**
 * Releases what the runtime opened, after Nest has stopped HTTP and the NATS transport
 * (so in-flight work has finished): drain NATS (flushes pending publishes), close the pool,
 * flush spans. Readiness turns false first so load balancers stop sending work.
 */
@Injectable()
class RuntimeLifecycle implements BeforeApplicationShutdown, OnApplicationShutdown {
  constructor(
    @Inject(RUNTIME_DEPS) private readonly deps: RuntimeDeps,
    private readonly readiness: ReadinessService,
  ) {}

  beforeApplicationShutdown(): void {
    this.readiness.markDraining();
    this.deps.logger.info('shutting down: finishing in-flight work');
  }

  async onApplicationShutdown(): Promise<void> {
    const { nc, pool, logger } = this.deps;
    await nc.drain().catch((error: Error) => logger.warn({ err: error.message }, 'nats drain failed'));
    await pool.end().catch((error: Error) => logger.warn({ err: error.message }, 'pool close failed'));
    logger.info('stopped');
    await this.deps.closeMetrics().catch((error: Error) => logger.warn({ err: error.message }, 'metrics close failed'));
    await this.deps.shutdownTracing();
  }
}

/** What every service has: its pool, bus, logger, health endpoints and readiness checks. */
@Global()
@Module({})
export class RuntimeModule {
  static forRoot(deps: RuntimeDeps): DynamicModule {
    return {
      module: RuntimeModule,
      global: true,
      controllers: [HealthController, createHealthHandler(deps.service, deps.info.version)],
      providers: [
        { provide: RUNTIME_DEPS, useValue: deps },
        { provide: PG_POOL, useValue: deps.pool },
        { provide: NATS_CONNECTION, useValue: deps.nc },
        { provide: LOGGER, useValue: deps.logger },
        { provide: SERVICE_INFO, useValue: deps.info },
        { provide: SERVICE_ENV, useValue: deps.env },
        // Inject by class: `constructor(private readonly metrics: Metrics)`.
        { provide: Metrics, useValue: deps.metrics },
        // Tests replace it with a TestClock (overrideProvider(Clock)) to move time by hand.
        { provide: Clock, useValue: systemClock },
        { provide: RpcClient, useFactory: () => new RpcClient(deps.nc) },
        { provide: JetStreamPublisher, useFactory: () => new JetStreamPublisher(deps.nc) },
        {
          provide: ReadinessService,
          useFactory: () => {
            const readiness = new ReadinessService();
            const nats = new NatsHealth(deps.nc, deps.logger);
            readiness.register('database', async () => {
              const up = await pingDatabase(deps.pool, 1_000);
              return { up, detail: up ? '' : 'database not reachable' };
            });
            readiness.register('nats', () => nats.check());
            deps.metrics.trackReadiness(readiness);
            return readiness;
          },
        },
        RuntimeLifecycle,
      ],
      exports: [
        PG_POOL,
        NATS_CONNECTION,
        LOGGER,
        SERVICE_INFO,
        SERVICE_ENV,
        Metrics,
        Clock,
        RpcClient,
        JetStreamPublisher,
        ReadinessService,
      ],
    };
  }
}
