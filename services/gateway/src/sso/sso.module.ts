import { Module } from '@nestjs/common';

import { AccountsModule } from '../accounts/accounts.module.js';
import { SsoAdminController } from './sso-admin.controller.js';
import { SsoSignInController } from './sso-signin.controller.js';

/** Organization SSO at the edge: the admin settings, and "Sign in with your organization". */
@Module({ imports: [AccountsModule], controllers: [SsoSignInController, SsoAdminController] })
export class SsoModule {}
