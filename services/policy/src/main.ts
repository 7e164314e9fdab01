import 'reflect-metadata';

import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

await serviceMain({
  name: 'policy',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
});
