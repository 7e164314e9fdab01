import { Module } from '@nestjs/common';

import { AccountSecurityService } from './account-security.service.js';
import { AccountsHandler } from './accounts.handler.js';
import { ChallengesRepository, SessionsRepository, UsersRepository } from './accounts.repository.js';
import { ChallengePruner } from './challenge-pruner.js';
import { PasskeysService } from './passkeys.service.js';
import { SessionsService } from './sessions.service.js';

/** Users, their passkeys, passkey ceremonies and browser sessions. */
@Module({
  controllers: [AccountsHandler],
  providers: [
    AccountSecurityService,
    ChallengePruner,
    PasskeysService,
    SessionsService,
    UsersRepository,
    ChallengesRepository,
    SessionsRepository,
  ],
  // The OAuth authorization server signs people in with their gateway session (src/oauth/).
  // SSO (src/sso/) provisions users and opens sessions for them.
  exports: [SessionsService, UsersRepository],
})
export class AccountsModule {}
