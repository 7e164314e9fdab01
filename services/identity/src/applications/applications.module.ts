import { Module } from '@nestjs/common';

import { OrganizationsModule } from '../organizations/organizations.module.js';
import { ApplicationEvents } from './application-events.js';
import { ApplicationsHandler } from './applications.handler.js';
import { ApplicationsRepository } from './applications.repository.js';
import { ApplicationsService } from './applications.service.js';

@Module({
  imports: [OrganizationsModule],
  controllers: [ApplicationsHandler],
  providers: [ApplicationsService, ApplicationsRepository, ApplicationEvents],
  exports: [ApplicationsService, ApplicationEvents],
})
export class ApplicationsModule {}
