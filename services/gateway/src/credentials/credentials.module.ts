import { Module } from '@nestjs/common';

import { ConnectModule } from '../connect/connect.module.js';
import { PolicyModule } from '../policy/policy.module.js';
import { CredentialsController } from './credentials.controller.js';
import { CredentialsService } from './credentials.service.js';

/** Credential-only mode (POST /v1/credentials); CredentialsService is shared with gateway mode. */
@Module({
  imports: [PolicyModule, ConnectModule],
  controllers: [CredentialsController],
  providers: [CredentialsService],
  exports: [CredentialsService],
})
export class CredentialsModule {}
