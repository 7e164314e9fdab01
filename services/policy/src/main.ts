import 'reflect-metadata';

import { streams } from '@context-gateway/proto';
import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

await serviceMain({
  name: 'policy',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
  // CONTROL: policy follows it (applications, grants) and publishes PolicyChanged to it.
  streams: [streams.control, streams.deadLetters],
});
