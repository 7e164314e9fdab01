import { Module } from '@nestjs/common';

import { ApplicationsModule } from '../applications/applications.module.js';
import { ApiKeysHandler } from './api-keys.handler.js';
import { ApiKeysRepository } from './api-keys.repository.js';
import { ApiKeysService } from './api-keys.service.js';

@Module({
  imports: [ApplicationsModule],
  controllers: [ApiKeysHandler],
  providers: [ApiKeysService, ApiKeysRepository],
})
export class ApiKeysModule {}
