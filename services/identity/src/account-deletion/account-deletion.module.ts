import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { OAuthModule } from '../oauth/oauth.module.js';
import { AccountDeletionHandler } from './account-deletion.handler.js';
import { AccountDeletionService } from './account-deletion.service.js';

/** A person deleting their own account: it spans accounts and the authorization server's grants. */
@Module({
  imports: [AccountsModule, OAuthModule],
  controllers: [AccountDeletionHandler],
  providers: [AccountDeletionService],
})
export class AccountDeletionModule {}
