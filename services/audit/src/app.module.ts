import { Module } from '@nestjs/common';

import { AuditorsModule } from './auditors/auditors.module.js';
import { LogModule } from './log/log.module.js';

/** audit: the tamper-evident audit log. One imported module per bounded context. */
@Module({ imports: [LogModule, AuditorsModule] })
export class AppModule {}
