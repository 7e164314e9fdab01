import 'reflect-metadata';

import { streams } from '@context-gateway/proto';
import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

await serviceMain({
  name: 'audit',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
  // The log is fed from AUDIT; events that can never be appended are copied to DEAD_LETTERS.
  streams: [streams.audit, streams.deadLetters],
});
