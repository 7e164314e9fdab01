import { PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Global, Module } from '@nestjs/common';
import type { Pool } from 'pg';

import type { Env } from '../env.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { IntegrationCatalog } from './integration-catalog.js';

/** Credentials still sealed under the keyring (a deleted connection's key was shredded already). */
export async function countSealedCredentials(pool: Pick<Pool, 'query'>): Promise<number> {
  return (
    await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM connections WHERE wrapped_data_key IS NOT NULL')
  ).rows[0]!.n;
}

/** The catalog, the OAuth client for the sources and the credential vault: what every context of the broker shares. */
@Global()
@Module({
  providers: [
    { provide: IntegrationCatalog, inject: [SERVICE_ENV], useFactory: (env: Env) => IntegrationCatalog.load(env) },
    {
      provide: SourceOAuthClient,
      inject: [SERVICE_ENV],
      useFactory: (env: Env) =>
        new SourceOAuthClient({
          redirectUri: new URL('/v1/connect/callback', env.GATEWAY_PUBLIC_URL).href,
          allowInsecureHttp: env.INTEGRATION_ALLOW_INSECURE_HTTP,
          timeoutMs: env.SOURCE_HTTP_TIMEOUT_MS,
        }),
    },
    {
      provide: CredentialVault,
      inject: [SERVICE_ENV, PG_POOL],
      useFactory: (env: Env, pool: Pool) =>
        CredentialVault.open(env.MASTER_KEY_FILE, env.MASTER_KEY_CREATE_IF_MISSING, () => countSealedCredentials(pool)),
    },
  ],
  exports: [IntegrationCatalog, SourceOAuthClient, CredentialVault],
})
export class IntegrationsModule {}
