import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describeRpcFuzz } from '@context-gateway/service-kit/testing';
import { afterAll } from '@jest/globals';

import { AppModule } from './app.module.js';
import { type Env, loadEnv } from './env.js';

// Every `ps.v1.*` subject fed valid, mutated and random protobuf (docs/fuzzing.md), the
// sharded ones (`ps.v1.shard.0.*`) too: one shard of one. shard-query-fuzz.int-spec.ts adds
// the query path's people, grants and hand-made cases.
const keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-fuzz-'));
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

describeRpcFuzz({
  name: 'personal-server',
  module: AppModule,
  loadEnv,
  env: { SHARD_ID: '0', SHARD_COUNT: '1', MASTER_KEY_FILE: join(keyDir, 'master.key') },
  shard: (env) => (env as Env).SHARD_ID,
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
  minSubjects: 14,
});
