import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { provisionJetStream } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import type { RpcDescriptor } from '@context-gateway/proto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';

import type { RuntimeEnv } from '../config/env.js';
import { type RunningService, runService, type ServiceDefinition } from '../runtime/bootstrap.js';

export interface HarnessServiceOptions<E extends RuntimeEnv> extends Omit<
  ServiceDefinition,
  'version' | 'env' | 'migrationsDir'
> {
  /** The service's own env parser (its src/env.ts), so the test boots what main.ts boots. */
  loadEnv: (raw: Record<string, string>) => E;
  /** Variables beyond the ones the harness sets (database, bus, HTTP port 0, quiet logs). */
  env?: Record<string, string>;
  version?: string;
}

/**
 * One test file's infrastructure for booting real services as `main.ts` does: a private
 * nats-server, a client on it (for stubs and requests), and a throw-away schema migrated
 * with the service's migrations. Stubs go on `nc` before `run()` when the service asks its
 * peers at boot; `stop()` ends everything in reverse order.
 */
export class ServiceHarness {
  readonly #services: RunningService[] = [];

  private constructor(
    readonly nats: PrivateNats,
    readonly nc: NatsConnection,
    readonly db: TestSchema,
    private readonly migrationsDir: string,
  ) {}

  static async start(options: { schemaPrefix: string; migrationsDir: string }): Promise<ServiceHarness> {
    const nats = await startPrivateNats();
    try {
      const nc = await connect({ servers: nats.url });
      // What the bootstrap step does before services start: they only check the streams exist.
      await provisionJetStream(nc, pino({ level: 'silent' }));
      const db = await createTestSchema({ prefix: options.schemaPrefix, migrationsDir: options.migrationsDir });
      return new ServiceHarness(nats, nc, db, options.migrationsDir);
    } catch (error) {
      await nats.stop();
      throw error;
    }
  }

  /** Answers one RPC subject with a fixed reply, as its owning service would for a valid caller. */
  stub<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    reply: MessageInitShape<Res>,
  ): void {
    const body = toBinary(descriptor.response, create(descriptor.response, reply));
    this.nc.subscribe(descriptor.subject, { callback: (_error, msg) => void msg.respond(body) });
  }

  /** Boots a service against this harness's schema and nats-server. */
  async run<E extends RuntimeEnv>(options: HarnessServiceOptions<E>): Promise<RunningService> {
    const { loadEnv, env = {}, version = 'test', ...definition } = options;
    const service = await runService({
      ...definition,
      version,
      migrationsDir: this.migrationsDir,
      env: loadEnv({
        DATABASE_URL: this.db.url,
        DATABASE_SCHEMA: this.db.schema,
        NATS_URL: this.nats.url,
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        BOOT_TIMEOUT_MS: '5000',
        // In process, the gateway's load shedding would measure the test runner's heap and
        // event loop (every test file of the worker), not the service's: off unless a test
        // sets them. Other services ignore these.
        SHED_MAX_HEAP_MIB: '0',
        SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
        ...env,
      }),
    });
    this.#services.push(service);
    return service;
  }

  async stop(): Promise<void> {
    for (const service of this.#services.splice(0).reverse()) await service.close();
    await this.nc.close().catch(() => undefined);
    await this.nats.stop();
    await this.db.drop();
  }
}
