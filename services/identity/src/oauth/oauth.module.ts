import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { ApplicationsModule } from '../applications/applications.module.js';
import { SsoModule } from '../sso/sso.module.js';
import { OAuthAudit } from './oauth-audit.js';
import { OAuthClientsHandler } from './oauth-clients.handler.js';
import { OAuthClientsRepository } from './oauth-clients.repository.js';
import { OAuthClientsService } from './oauth-clients.service.js';
import { OAuthGrantsHandler } from './oauth-grants.handler.js';
import { OAuthGrantsRepository } from './oauth-grants.repository.js';
import { OAuthGrantsService } from './oauth-grants.service.js';
import { OAuthKeysRepository } from './oauth-keys.repository.js';
import { OAuthRegistrationHandler } from './oauth-registration.handler.js';
import { OAuthRegistrationRepository } from './oauth-registration.repository.js';
import { OAuthRegistrationService } from './oauth-registration.service.js';
import { OAuthServer } from './oauth-server.js';
import { OAuthStoreRepository } from './oauth-store.repository.js';

/** The OAuth 2.1 authorization server (oidc-provider) for applications and agents. */
@Module({
  imports: [AccountsModule, ApplicationsModule, SsoModule],
  controllers: [OAuthClientsHandler, OAuthGrantsHandler, OAuthRegistrationHandler],
  providers: [
    OAuthClientsService,
    OAuthServer,
    OAuthStoreRepository,
    OAuthClientsRepository,
    OAuthKeysRepository,
    OAuthAudit,
    OAuthGrantsRepository,
    OAuthGrantsService,
    OAuthRegistrationRepository,
    OAuthRegistrationService,
  ],
  exports: [OAuthServer, OAuthClientsRepository, OAuthGrantsService],
})
export class OAuthModule {}
