import { fileURLToPath } from 'node:url';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
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

// identity booted as main.ts boots it, against its own migrated schema and a private
// nats-server, then every subject it answers is fed valid, mutated and random protobuf
// (docs/fuzzing.md). A reply is a response or a typed error — never `internal`, never
// none — a rejected request stores nothing, and identity is still ready afterwards.
const RUNS = fuzzRuns(40);
const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const subjects = allRpcDescriptors().filter((d) => d.subject.startsWith(`${SUBJECT_PREFIX.identity}.`));

let nats: PrivateNats;
let nc: NatsConnection;
let db: TestSchema;
let service: RunningService;
/** An organization and an application that exist, so fuzzed requests can name them. */
const known: string[] = [];
const met: Record<string, RpcFuzzSummary> = {};

beforeAll(async () => {
  nats = await startPrivateNats();
  db = await createTestSchema({ prefix: 'identity_fuzz', migrationsDir });
  service = await runService({
    name: 'identity',
    version: 'test',
    env: loadEnv({
      DATABASE_URL: db.url,
      DATABASE_SCHEMA: db.schema,
      NATS_URL: nats.url,
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      BOOT_TIMEOUT_MS: '5000',
    }),
    module: AppModule,
    migrationsDir,
    streams: [streams.control],
  });
  nc = await connect({ servers: nats.url });
  const org = rpc.identity.createOrganization;
  const { organization } = fromBinary(
    org.response,
    (await nc.request(org.subject, toBinary(org.request, create(org.request, { name: 'Fuzz' })))).data,
  );
  const appRpc = rpc.identity.createApplication;
  const { application } = fromBinary(
    appRpc.response,
    (
      await nc.request(
        appRpc.subject,
        toBinary(
          appRpc.request,
          create(appRpc.request, {
            orgId: organization?.id,
            name: 'Fuzz app',
            callbackUrls: ['https://app.example/cb'],
            integrations: ['github'],
            scopes: ['github:read:repos'],
          }),
        ),
      )
    ).data,
  );
  known.push(organization?.id ?? '', application?.id ?? '', organization?.slug ?? '');
  expect(known.every(Boolean)).toBe(true);
}, 60_000);

afterAll(async () => {
  await service?.close();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
  await db?.drop();
});

describe('identity under fuzzed NATS requests', () => {
  it('covers every identity subject in the catalog', () => {
    expect(subjects.length).toBeGreaterThan(10);
  });

  it.each(subjects.map((d) => [d.subject, d] as const))(
    '%s: a response or a typed error, nothing stored when rejected, still ready',
    async (_subject, descriptor) => {
      met[descriptor.subject] = await fuzzRpcSubject(descriptor, {
        nc,
        runs: RUNS,
        health: rpc.health.identity,
        rowCounts: () => countRows(db.pool, db.schema),
        known,
      });
    },
    60_000 + RUNS * 200,
  );

  it('reached the handlers, not only the decoder: some requests succeeded and some were refused by a handler', () => {
    const all = Object.values(met);
    expect(all.reduce((n, s) => n + s.ok, 0)).toBeGreaterThan(0);
    expect(all.some((s) => (s.errors.not_found ?? 0) + (s.errors.conflict ?? 0) > 0)).toBe(true);
  });
});
