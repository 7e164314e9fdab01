import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import {
  applyMigrations,
  createPool,
  pingDatabase,
  serviceSchemaName,
  verifyMigrations,
} from '@context-gateway/database';
import {
  bindMessagingMetrics,
  connectNats,
  inboxPrefix,
  NatsRpcServer,
  readUserSeed,
  streamsUsedBy,
  verifyStreams,
} from '@context-gateway/messaging';
import { createLogger, initTracing, NestLogger } from '@context-gateway/observability';
import type { ServiceName } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';
import { Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import { databaseUrl, EnvError, metricsListen, type RuntimeEnv } from '../config/env.js';
import { type ErrorPageRenderer, ProblemFilter } from '../http/problem.filter.js';
import { installRequestTracing, requestIdFor } from '../http/request-tracing.js';
import { installHttpMetrics } from '../metrics/http-metrics.js';
import { Metrics } from '../metrics/metrics.js';
import { type MetricsServer, startMetricsServer } from '../metrics/metrics-server.js';
import { RuntimeModule } from './runtime.module.js';

export interface ServiceDefinition {
  name: ServiceName;
  version: string;
  env: RuntimeEnv;
  /** The service's own root module: its bounded contexts. */
  module: Type<unknown>;
  /** The service's prisma/migrations folder, applied at boot under an advisory lock. */
  migrationsDir: string;
  /** For a sharded service (personal-server): this process's shard; its sharded handlers subscribe `…shard.<n>…`. */
  shard?: number | ((env: RuntimeEnv) => number);
  /** Largest HTTP body accepted (default 64 KiB; control-plane services take no bodies). */
  bodyLimitBytes?: number;
  /**
   * An HTML page for an error, where the request is a browser's visit to one of the
   * service's pages (undefined: problem+json, as for every API route).
   */
  errorPage?: ErrorPageRenderer;
  /** Last touches on the app before it listens (content parsers, Swagger, ...). */
  configure?: (app: NestFastifyApplication, logger: Logger) => void | Promise<void>;
}

export interface RunningService {
  app: NestFastifyApplication;
  logger: Logger;
  url: string;
  /** GET /metrics, on its own listener (METRICS_PORT). */
  metricsUrl: string;
  close(): Promise<void>;
}

export interface ServiceMainOptions extends Omit<ServiceDefinition, 'version' | 'env' | 'migrationsDir'> {
  /** The service's package folder (`new URL('..', import.meta.url)` from src/main.ts). */
  serviceRoot: URL;
  /** The service's own env parser (src/env.ts); runs here so a bad environment is reported like any boot failure. */
  loadEnv: () => RuntimeEnv;
}

/**
 * The whole of a service's main(): reads its version and migrations from its package
 * folder, parses its env, runs it, and turns any boot failure into exit code 1.
 */
export async function serviceMain(options: ServiceMainOptions): Promise<void> {
  const { serviceRoot, loadEnv, ...rest } = options;
  try {
    const pkg = JSON.parse(readFileSync(new URL('package.json', serviceRoot), 'utf8')) as { version: string };
    await runService({
      ...rest,
      env: loadEnv(),
      version: pkg.version,
      migrationsDir: fileURLToPath(new URL('prisma/migrations', serviceRoot)),
    });
  } catch (error) {
    // runService has logged its own failures; an invalid environment fails before any logger exists.
    if (error instanceof EnvError) console.error(error.message);
    process.exitCode = 1;
    // Whatever is still open after a failed boot must not keep a dead service around.
    setTimeout(() => process.exit(1), 2_000).unref();
  }
}

async function retryUntil<T>(what: string, timeoutMs: number, logger: Logger, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 1; ; n += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      logger.warn({ attempt: n, err: (error as Error).message }, `${what} not reachable yet, retrying`);
      await new Promise((r) => setTimeout(r, Math.min(2_000, 200 * n)));
    }
  }
}

/**
 * Boots one service the same way everywhere: tracing, logger, database (migrated), NATS,
 * streams, then the Nest app with HTTP (health + the service's routes) and the NATS
 * transport. Dependencies are waited for up to BOOT_TIMEOUT_MS so a whole stack can start
 * in any order; after that, the orchestrator's restart is the retry.
 */
export async function runService(def: ServiceDefinition): Promise<RunningService> {
  const { env } = def;
  const tracing = await initTracing({
    service: def.name,
    exporter: env.OTEL_TRACES_EXPORTER,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    version: def.version,
  });
  const logger = createLogger({ service: def.name, level: env.LOG_LEVEL });
  const schema = env.DATABASE_SCHEMA ?? serviceSchemaName(def.name);
  const shard = typeof def.shard === 'function' ? def.shard(env) : def.shard;
  const metrics = new Metrics({ service: def.name, version: def.version, ...(shard === undefined ? {} : { shard }) });

  const pool: Pool = createPool({
    url: databaseUrl(env),
    schema,
    max: env.DATABASE_POOL_MAX,
    applicationName: def.name,
    onError: (error) => logger.warn({ err: error.message }, 'database connection lost'),
  });
  let nc: NatsConnection | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    // Up first, so a slow boot (waiting for Postgres) is visible to Prometheus too.
    metricsServer = await startMetricsServer(metrics, { ...metricsListen(env), logger });
    const server = metricsServer;
    const closeMetrics = () => server.close();
    // Wait for the server, but do not retry the migration itself: an edited or failed
    // migration will not fix itself, and the error says what to do.
    await retryUntil('database', env.BOOT_TIMEOUT_MS, logger, async () => {
      if (!(await pingDatabase(pool, 2_000))) throw new Error('database not reachable');
    });
    if (env.DATABASE_MIGRATIONS === 'verify') {
      // A service login may not change its schema: the owner role migrated it beforehand.
      await verifyMigrations({ pool, schema, migrationsDir: def.migrationsDir, logger });
      logger.info({ schema }, 'database migrations verified');
    } else {
      const migrated = await applyMigrations({ pool, schema, migrationsDir: def.migrationsDir, logger });
      logger.info({ schema, applied: migrated.applied.map((m) => m.name) }, 'database migrated');
    }

    nc = await connectNats({
      url: env.NATS_URL,
      name: `${def.name}@${process.pid}`,
      logger,
      bootTimeoutMs: env.BOOT_TIMEOUT_MS,
      ...(env.NATS_NKEY_SEED_FILE ? { seed: readUserSeed(env.NATS_NKEY_SEED_FILE) } : {}),
      ...(env.NATS_TLS_CA_FILE ? { tlsCaFile: env.NATS_TLS_CA_FILE } : {}),
      // Replies come back under the service's own prefix: its NATS rights allow no other.
      inboxPrefix: inboxPrefix(def.name),
    });
    // Everything built on this connection (RpcClient, publishers, consumers, the RPC server) reports here.
    bindMessagingMetrics(nc, metrics.messaging);
    // The streams the catalog says it publishes to or consumes; the NATS bootstrap creates them.
    await verifyStreams(nc, streamsUsedBy(def.name));

    @Module({
      imports: [
        RuntimeModule.forRoot({
          service: def.name,
          env,
          info: { name: def.name, version: def.version, databaseSchema: schema },
          pool,
          nc,
          logger,
          metrics,
          closeMetrics,
          shutdownTracing: () => tracing.shutdown(),
        }),
        def.module,
      ],
    })
    class RootModule {}

    const adapter = new FastifyAdapter({
      bodyLimit: def.bodyLimitBytes ?? 64 * 1024,
      genReqId: (req: { headers: Record<string, string | string[] | undefined> }) =>
        requestIdFor(req.headers['x-request-id']),
      // Our own access log (request-tracing) replaces Fastify's, which would log raw URLs.
      logger: false,
      // Closing keep-alive sockets lets shutdown finish without waiting for idle clients.
      forceCloseConnections: 'idle',
      // Slow or short bodies and trickled headers get 408 and a closed connection (env.ts).
      requestTimeout: env.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      http: {
        headersTimeout: env.HTTP_HEADERS_TIMEOUT_MS,
        // Node checks those deadlines on this interval (default 30 s): check often enough
        // that a deadline holds to about a second.
        connectionsCheckingInterval: Math.min(1_000, env.HTTP_HEADERS_TIMEOUT_MS / 2),
      },
      ...(env.HTTP_TRUSTED_PROXIES ? { trustProxy: env.HTTP_TRUSTED_PROXIES } : {}),
    });
    const app = await NestFactory.create<NestFastifyApplication>(RootModule, adapter, {
      logger: new NestLogger(logger),
      abortOnError: false,
    });
    const fastify = app.getHttpAdapter().getInstance();
    installRequestTracing(fastify, logger);
    installHttpMetrics(fastify, metrics);
    app.useGlobalFilters(new ProblemFilter(logger, def.errorPage));
    app.connectMicroservice(
      {
        strategy: new NatsRpcServer({
          connection: nc,
          queue: def.name,
          logger,
          shard,
        }),
      },
      { inheritAppConfig: true },
    );
    await def.configure?.(app, logger);

    await app.startAllMicroservices();
    await app.listen({ port: env.HTTP_PORT, host: env.HTTP_HOST });
    const address = fastify.server.address();
    const port = typeof address === 'object' && address ? address.port : env.HTTP_PORT;
    const url = `http://${env.HTTP_HOST === '0.0.0.0' ? '127.0.0.1' : env.HTTP_HOST}:${port}`;
    logger.info({ url, metrics_url: metricsServer.url, version: def.version }, `${def.name} ready`);

    // Our own signal handling rather than Nest's enableShutdownHooks, which re-raises the
    // signal after closing: a clean stop should exit 0, a stuck one must still end.
    let stopping = false;
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'signal received');
        setTimeout(() => {
          logger.error({ timeoutMs: env.SHUTDOWN_TIMEOUT_MS }, 'shutdown took too long, exiting');
          process.exit(1);
        }, env.SHUTDOWN_TIMEOUT_MS).unref();
        app.close().then(
          () => process.exit(0),
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      });
    }
    return { app, logger, url, metricsUrl: metricsServer.url, close: () => app.close() };
  } catch (error) {
    logger.fatal({ err: error }, `${def.name} failed to start`);
    await nc?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    await metricsServer?.close().catch(() => undefined);
    await tracing.shutdown().catch(() => undefined);
    throw error;
  }
}
