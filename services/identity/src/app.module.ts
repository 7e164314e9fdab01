import { StorableStringsInterceptor } from '@context-gateway/messaging';
import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';

import { AccountDeletionModule } from './account-deletion/account-deletion.module.js';
import { AccountsModule } from './accounts/accounts.module.js';
import { ApiKeysModule } from './api-keys/api-keys.module.js';
import { ApplicationsModule } from './applications/applications.module.js';
import { DatabaseModule } from './database/database.module.js';
import { OAuthModule } from './oauth/oauth.module.js';
import { TokenRevocationsModule } from './oauth/token-revocation-events.js';
import { OrganizationsModule } from './organizations/organizations.module.js';
import { SsoModule } from './sso/sso.module.js';

/** identity: organizations, users, applications, API keys, passkeys, SSO. One imported module per bounded context. */
@Module({
  imports: [
    DatabaseModule,
    TokenRevocationsModule,
    OrganizationsModule,
    ApplicationsModule,
    ApiKeysModule,
    AccountsModule,
    OAuthModule,
    AccountDeletionModule,
    SsoModule,
  ],
  // Every NATS request's strings are held to what Postgres can store, before any handler runs.
  providers: [{ provide: APP_INTERCEPTOR, useClass: StorableStringsInterceptor }],
})
export class AppModule {}
