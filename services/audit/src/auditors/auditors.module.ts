import { Module } from '@nestjs/common';

import { AuditorsHandler } from './auditors.handler.js';
import { AuditorsService } from './auditors.service.js';

/** Read-only auditor credentials scoped to one organization. */
@Module({ controllers: [AuditorsHandler], providers: [AuditorsService] })
export class AuditorsModule {}
