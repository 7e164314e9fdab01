import { Clock } from '@context-gateway/clock';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Global, Module } from '@nestjs/common';

import type { Env } from '../env.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { IntegrationCatalog } from './integration-catalog.js';

/** The catalog and the OAuth client for the sources: what every context of the broker shares. */
@Global()
@Module({
  providers: [
    { provide: IntegrationCatalog, inject: [SERVICE_ENV], useFactory: (env: Env) => IntegrationCatalog.load(env) },
    {
      provide: SourceOAuthClient,
      inject: [SERVICE_ENV, Clock],
      useFactory: (env: Env, clock: Clock) =>
        new SourceOAuthClient(
          {
            redirectUri: new URL('/v1/connect/callback', env.GATEWAY_PUBLIC_URL).href,
            allowInsecureHttp: env.INTEGRATION_ALLOW_INSECURE_HTTP,
            timeoutMs: env.SOURCE_HTTP_TIMEOUT_MS,
          },
          clock,
        ),
    },
  ],
  exports: [IntegrationCatalog, SourceOAuthClient],
})
export class IntegrationsModule {}
