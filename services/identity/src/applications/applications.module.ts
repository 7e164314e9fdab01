import { Module } from '@nestjs/common';

import { TokenRevocationEvents } from '../oauth/token-revocation-events.js';
import { OrganizationsModule } from '../organizations/organizations.module.js';
import { ApplicationEvents } from './application-events.js';
import { ApplicationsHandler } from './applications.handler.js';
import { ApplicationsRepository } from './applications.repository.js';
import { ApplicationsService } from './applications.service.js';

@Module({
  imports: [OrganizationsModule],
  controllers: [ApplicationsHandler],
  providers: [ApplicationsService, ApplicationsRepository, ApplicationEvents, TokenRevocationEvents],
  exports: [ApplicationsService, TokenRevocationEvents],
})
export class ApplicationsModule {}
