import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { SsoHandler } from './sso.handler.js';
import { MembershipsRepository, SsoConfigsRepository, SsoLoginsRepository } from './sso.repository.js';
import { SsoConfigService } from './sso-config.service.js';
import { SsoSignInService } from './sso-signin.service.js';

/** Organization SSO: each organization's own OpenID Connect IdP signs its people in. */
@Module({
  imports: [AccountsModule],
  controllers: [SsoHandler],
  providers: [SsoConfigService, SsoSignInService, SsoConfigsRepository, SsoLoginsRepository, MembershipsRepository],
})
export class SsoModule {}
