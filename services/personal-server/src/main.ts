import 'reflect-metadata';

import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { type Env, loadEnv } from './env.js';

await serviceMain({
  name: 'personal-server',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
  // Sharded handlers (ps.v1.shard.<n>.*) subscribe this process's own shard.
  shard: (env) => (env as Env).SHARD_ID,
});
