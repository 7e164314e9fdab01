import { Module } from '@nestjs/common';

import { AuditorApiController } from './auditor-api.controller.js';
import { AuditorApiService } from './auditor-api.service.js';

/** /v1/audit/*: the audit trail for auditors and users; the `auditor` auth kind. */
@Module({ controllers: [AuditorApiController], providers: [AuditorApiService] })
export class AuditorApiModule {}
