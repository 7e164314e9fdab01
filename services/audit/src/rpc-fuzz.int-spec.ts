import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describeRpcFuzz } from '@context-gateway/service-kit/testing';
import { afterAll } from '@jest/globals';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

// Every audit subject fed valid, mutated and random protobuf (docs/fuzzing.md).
const keyDir = mkdtempSync(join(tmpdir(), 'cg-audit-fuzz-'));
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

describeRpcFuzz({
  name: 'audit',
  module: AppModule,
  loadEnv,
  env: {
    MASTER_KEY_FILE: join(keyDir, 'master.key'),
    // Under Jest the service runs from TypeScript sources, where there is no compiled worker script.
    AUDIT_DECODE_THREADS: '0',
  },
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
  // The writer signs checkpoints on its own schedule.
  backgroundTables: ['checkpoints'],
  minSubjects: 4,
});
