import { fileURLToPath } from 'node:url';

import { describeRpcFuzz } from '@context-gateway/service-kit/testing';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

// Every policy subject fed valid, mutated and random protobuf (docs/fuzzing.md).
describeRpcFuzz({
  name: 'policy',
  module: AppModule,
  loadEnv,
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
  // The CONTROL follower moves its cursor on its own.
  backgroundTables: ['control_cursor'],
  minSubjects: 4,
});
