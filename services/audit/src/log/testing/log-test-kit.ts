import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock, systemClock } from '@context-gateway/clock';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { connectNats, ensureStreams } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  streams,
} from '@context-gateway/proto';
import { LOGGER, Metrics, NATS_CONNECTION, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Global, Module, type ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type pg from 'pg';
import type { Logger } from 'pino';

import { type Env, loadEnv } from '../../env.js';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

/** Test logs stay quiet unless TEST_LOG_LEVEL asks for them. */
export function testLogger(): Logger {
  return createLogger({ service: 'audit-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

/** A valid data-query event; `i` varies its application, user, outcome and time. */
export function auditTestEvent(i: number, orgId: string): AuditEvent {
  return create(AuditEventSchema, {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date(Date.UTC(2026, 10, 25, 9, 0, 0, i))),
    orgId,
    applicationId: `app-${i % 3}`,
    userId: `user-${i % 5}`,
    integration: 'github',
    capability: 'github:read:repos',
    action: AuditAction.DATA_QUERY,
    outcome: i % 7 === 0 ? AuditOutcome.DENIED : AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
    actorId: 'key-1',
    requestId: `req-${i}`,
    latencyMs: 3,
  });
}

/**
 * One audit instance as main.ts wires it, on the test's own pool, NATS connection and env,
 * with real time (the tests watch checkpoints being signed every AUDIT_CHECKPOINT_INTERVAL_MS).
 */
export async function startAuditInstance(deps: {
  pool: pg.Pool;
  nc: NatsConnection;
  env: Env;
  logger: Logger;
  imports: NonNullable<ModuleMetadata['imports']>;
}): Promise<TestingModule> {
  @Global()
  @Module({
    providers: [
      { provide: PG_POOL, useValue: deps.pool },
      { provide: NATS_CONNECTION, useValue: deps.nc },
      { provide: SERVICE_ENV, useValue: deps.env },
      { provide: LOGGER, useValue: deps.logger },
      { provide: Clock, useValue: systemClock },
      { provide: Metrics, useValue: new Metrics({ service: 'audit', version: 'test' }) },
    ],
    exports: [PG_POOL, NATS_CONNECTION, SERVICE_ENV, LOGGER, Clock, Metrics],
  })
  class Runtime {}
  const moduleRef = await Test.createTestingModule({ imports: [Runtime, ...deps.imports] }).compile();
  await moduleRef.init();
  return moduleRef;
}

/** One test file's infrastructure: a migrated schema, a private nats-server with the audit streams, a key folder. */
export interface LogTestBed {
  db: TestSchema;
  nats: PrivateNats;
  nc: NatsConnection;
  env: Env;
  keyDir: string;
  stop(): Promise<void>;
}

export async function startLogTestBed(options: {
  prefix: string;
  logger: Logger;
  env?: Record<string, string>;
}): Promise<LogTestBed> {
  const db = await createTestSchema({ prefix: options.prefix, migrationsDir: MIGRATIONS });
  const nats = await startPrivateNats();
  const nc = await connectNats({ url: nats.url, name: options.prefix, logger: options.logger, bootTimeoutMs: 5_000 });
  await ensureStreams(nc, [streams.audit, streams.deadLetters], options.logger);
  const keyDir = mkdtempSync(join(tmpdir(), 'cg-audit-key-'));
  const env = loadEnv({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    MASTER_KEY_FILE: join(keyDir, 'master.key'),
    AUDIT_BATCH_SIZE: '300',
    AUDIT_BATCH_WAIT_MS: '20',
    // Under Jest the service runs from TypeScript sources, where there is no compiled worker script.
    AUDIT_DECODE_THREADS: '0',
    AUDIT_CHECKPOINT_INTERVAL_MS: '150',
    AUDIT_STANDBY_POLL_MS: '100',
    ...options.env,
  });
  return {
    db,
    nats,
    nc,
    env,
    keyDir,
    async stop() {
      await nc.close();
      await nats.stop();
      await db.drop();
      rmSync(keyDir, { recursive: true, force: true });
    },
  };
}
