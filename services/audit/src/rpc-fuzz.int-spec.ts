import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { countRows, createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import {
  fuzzRpcSubject,
  fuzzRuns,
  type PrivateNats,
  type RpcFuzzSummary,
  startPrivateNats,
} from '@context-gateway/messaging/testing';
import { allRpcDescriptors, rpc, streams, SUBJECT_PREFIX } from '@context-gateway/proto';
import { type RunningService, runService } from '@context-gateway/service-kit';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

// audit booted as main.ts boots it, against its own migrated schema and a private
// nats-server, then every subject it answers is fed valid, mutated and random protobuf
// (docs/fuzzing.md). A reply is a response or a typed error — never `internal`, never
// none — a rejected request stores nothing, and audit is still ready afterwards.
const RUNS = fuzzRuns(40);
const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const subjects = allRpcDescriptors().filter((d) => d.subject.startsWith(`${SUBJECT_PREFIX.audit}.`));

let nats: PrivateNats;
let nc: NatsConnection;
let db: TestSchema;
let service: RunningService;
const keyDir = mkdtempSync(join(tmpdir(), 'cg-audit-fuzz-'));
/** Ids repeated across requests, so a later request can meet what an earlier one wrote. */
const known: string[] = [randomUUID(), randomUUID()];
const met: Record<string, RpcFuzzSummary> = {};
/** What the decoder and the descriptor's checks answer, before any handler runs. */
const GENERIC = ['malformed_request', 'validation_failed'];

beforeAll(async () => {
  nats = await startPrivateNats();
  db = await createTestSchema({ prefix: 'audit_fuzz', migrationsDir });
  service = await runService({
    name: 'audit',
    version: 'test',
    env: loadEnv({
      DATABASE_URL: db.url,
      DATABASE_SCHEMA: db.schema,
      NATS_URL: nats.url,
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      BOOT_TIMEOUT_MS: '5000',
      MASTER_KEY_FILE: join(keyDir, 'master.key'),
      // Under Jest the service runs from TypeScript sources, where there is no compiled worker script.
      AUDIT_DECODE_THREADS: '0',
    }),
    module: AppModule,
    migrationsDir,
    streams: [streams.audit, streams.deadLetters],
  });
  nc = await connect({ servers: nats.url });
}, 60_000);

afterAll(async () => {
  await service?.close();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
  await db?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

describe('audit under fuzzed NATS requests', () => {
  it('covers every audit subject in the catalog', () => {
    expect(subjects.length).toBeGreaterThan(3);
  });

  it.each(subjects.map((d) => [d.subject, d] as const))(
    '%s: a response or a typed error, nothing stored when rejected, still ready',
    async (_subject, descriptor) => {
      met[descriptor.subject] = await fuzzRpcSubject(descriptor, {
        nc,
        runs: RUNS,
        health: rpc.health.audit,
        rowCounts: async () => {
          const { checkpoints: _background, ...rest } = await countRows(db.pool, db.schema);
          return rest;
        },
        known,
      });
    },
    60_000 + RUNS * 200,
  );

  it('reached the handlers, not only the decoder: some requests succeeded and some were refused by a handler', () => {
    const all = Object.values(met);
    expect(all.reduce((n, s) => n + s.ok, 0)).toBeGreaterThan(0);
    expect(all.some((s) => Object.keys(s.errors).some((code) => !GENERIC.includes(code)))).toBe(true);
  });
});
