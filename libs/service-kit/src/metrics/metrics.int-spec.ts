import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { timestampNow } from '@bufbuild/protobuf/wkt';
import {
  consumeEvents,
  ensureStreams,
  JetStreamPublisher,
  RpcClient,
  type RunningConsumer,
} from '@context-gateway/messaging';
import { defineEvent, rpc, type StreamDescriptor, SyncJobSchema, SyncReason } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Param,
} from '@nestjs/common';
import { type Logger, pino } from 'pino';
import { z } from 'zod';

import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '../config/env.js';
import type { RunningService } from '../runtime/bootstrap.js';
import { LOGGER, NATS_CONNECTION } from '../runtime/tokens.js';
import { ServiceHarness } from '../testing/service-harness.js';
import { Metrics } from './metrics.js';

// The runtime booted as a service boots it, with a route, an RPC and a JetStream consumer,
// then scraped the way Prometheus does: on the metrics listener, never on the HTTP port.

const stream: StreamDescriptor = {
  name: `METRICS_${randomUUID().slice(0, 8).toUpperCase()}`,
  subjects: ['metricstest.v1.jobs.>'],
  retention: 'workqueue',
  duplicateWindowMs: 60_000,
  maxAgeMs: 3_600_000,
  description: 'metrics test stream',
};
const jobRequested = defineEvent({
  publishers: ['sync-worker'],
  stream,
  subject: 'metricstest.v1.jobs.requested',
  message: SyncJobSchema,
  messageId: (job) => job.jobId,
});

@Controller()
class ThingsController {
  @Get('things/:thingId')
  get(@Param('thingId') thingId: string) {
    return { thingId };
  }
}

/** Consumes the test stream; the second job fails for good (dead-lettered). */
@Injectable()
class JobsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer: RunningConsumer | undefined;
  handled = 0;
  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}
  async onApplicationBootstrap() {
    this.consumer = await consumeEvents(
      this.nc,
      jobRequested,
      { durable: 'metrics-test', maxDeliver: 1, pendingSampleMs: 100 },
      (job) => {
        this.handled += 1;
        return job.reason === SyncReason.MANUAL ? Promise.resolve() : Promise.reject(new Error('cannot ever'));
      },
      this.logger,
    );
  }
  async onApplicationShutdown() {
    await this.consumer?.stop();
  }
}

@Module({ controllers: [ThingsController], providers: [JobsConsumer] })
class TestModule {}

let harness: ServiceHarness;
let service: RunningService;
let migrations: string;

const scrape = async () => {
  const response = await fetch(service.metricsUrl);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
};
const value = (text: string, name: string, labels: Record<string, string>) => {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};
const eventually = async (what: string, probe: () => Promise<boolean>) => {
  const until = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

beforeAll(async () => {
  migrations = mkdtempSync(join(tmpdir(), 'cg-metrics-migrations-'));
  harness = await ServiceHarness.start({ schemaPrefix: 'metrics', migrationsDir: migrations });
  // The catalog's streams are the harness's; this test's own one is created here.
  await ensureStreams(harness.nc, [stream], pino({ level: 'silent' }));
  const schema = z.object(runtimeEnvShape({ httpPort: 0 })).superRefine(refineRuntimeEnv);
  service = await harness.run({
    name: 'sync-worker',
    version: '9.9.9',
    loadEnv: (raw) => parseEnv(schema, raw),
    module: TestModule,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  rmSync(migrations, { recursive: true, force: true });
});

describe('the runtime metrics', () => {
  it('serves /metrics on its own listener only, never on the HTTP port', async () => {
    expect(new URL(service.metricsUrl).port).not.toBe(new URL(service.url).port);
    expect((await fetch(`${service.url}/metrics`)).status).toBe(404);
    const text = await scrape();
    expect(value(text, 'service_info', { service: 'sync-worker', version: '9.9.9' })).toBe(1);
    expect(value(text, 'service_ready', { service: 'sync-worker' })).toBe(1);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds\{service="sync-worker"\}/m);
  });

  it('counts HTTP requests by route template, not by the ids in their paths', async () => {
    for (const id of ['t-1', 't-2']) expect((await fetch(`${service.url}/things/${id}`)).status).toBe(200);
    const text = await scrape();
    expect(value(text, 'http_requests_total', { route: '/things/:thingId', method: 'GET', status: '200' })).toBe(2);
    expect(text).not.toContain('t-1');
  });

  it('counts and times RPCs on both ends by catalog subject and outcome', async () => {
    const client = service.app.get(RpcClient);
    await client.request(rpc.health['sync-worker'], {});
    await expect(client.request(rpc.health.gateway, {}, { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'service_unavailable',
    });
    const text = await scrape();
    expect(value(text, 'nats_rpc_server_requests_total', { subject: 'sync.v1.health', outcome: 'ok' })).toBe(1);
    expect(value(text, 'nats_rpc_server_duration_seconds_count', { subject: 'sync.v1.health' })).toBe(1);
    expect(value(text, 'nats_rpc_client_requests_total', { subject: 'sync.v1.health', outcome: 'ok' })).toBe(1);
    expect(
      value(text, 'nats_rpc_client_requests_total', { subject: 'gateway.v1.health', outcome: 'service_unavailable' }),
    ).toBe(1);
  });

  it('reports a consumer backlog, its outcomes and its dead letters', async () => {
    const publisher = service.app.get(JetStreamPublisher);
    const job = (reason: SyncReason) => ({
      jobId: randomUUID(),
      connectionId: randomUUID(),
      reason,
      requestedAt: timestampNow(),
    });
    const labels = { stream: stream.name, consumer: 'metrics-test' };
    await publisher.publish(jobRequested, job(SyncReason.MANUAL));
    await eventually('the job acked', async () => {
      const text = await scrape();
      return value(text, 'jetstream_consumer_messages_total', { ...labels, outcome: 'acked' }) === 1;
    });
    // Sampled every 100 ms here: once the job is acked the backlog reads 0.
    await eventually(
      'the backlog drained',
      async () => value(await scrape(), 'jetstream_consumer_pending', labels) === 0,
    );
    await publisher.publish(jobRequested, job(SyncReason.WEBHOOK));
    await eventually('the failing job dead-lettered', async () => {
      const text = await scrape();
      return value(text, 'jetstream_consumer_messages_total', { ...labels, outcome: 'dead_lettered' }) === 1;
    });
    const text = await scrape();
    expect(value(text, 'jetstream_dead_letters_total', { stream: stream.name, reason: 'max_deliveries' })).toBe(1);
    expect(value(text, 'jetstream_publish_total', { stream: stream.name, outcome: 'ok' })).toBe(2);
    expect(value(text, 'jetstream_consumer_handle_duration_seconds_count', labels)).toBe(2);
  });

  it('is injectable, so a service can declare its own metrics in the same registry', async () => {
    const metrics = service.app.get(Metrics);
    metrics.counter({ name: 'test_things_total', help: 'things' }).inc(3);
    expect(value(await scrape(), 'test_things_total', { service: 'sync-worker' })).toBe(3);
  });
});
