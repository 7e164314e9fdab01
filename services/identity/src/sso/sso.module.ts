import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { SsoHandler } from './sso.handler.js';
import { MembershipsRepository, SsoConfigsRepository, SsoLoginsRepository } from './sso.repository.js';
import { SsoConfigService } from './sso-config.service.js';
import { SsoPeople } from './sso-people.js';
import { SsoSignInService } from './sso-signin.service.js';
import { SsoTokenExchange } from './sso-token-exchange.js';

/** Organization SSO: each organization's own OpenID Connect IdP signs its people in. */
@Module({
  imports: [AccountsModule],
  controllers: [SsoHandler],
  providers: [
    SsoConfigService,
    SsoSignInService,
    SsoPeople,
    SsoTokenExchange,
    SsoConfigsRepository,
    SsoLoginsRepository,
    MembershipsRepository,
  ],
  exports: [SsoTokenExchange],
})
export class SsoModule {}
