import 'reflect-metadata';

import { serviceMain } from '@context-gateway/service-kit';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';
import { configureGateway } from './http/configure.js';
import { gatewayErrorPage } from './http/error-pages.js';

await serviceMain({
  name: 'gateway',
  serviceRoot: new URL('..', import.meta.url),
  loadEnv: () => loadEnv(),
  module: AppModule,
  errorPage: gatewayErrorPage,
  configure: configureGateway,
});
