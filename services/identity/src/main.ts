import 'reflect-metadata';

import { streams } from '@context-gateway/proto';
import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

await serviceMain({
  name: 'identity',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
  // identity publishes control.v1.application_changed (applications/application-events.ts).
  streams: [streams.control],
});
