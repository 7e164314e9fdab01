import { Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module.js';
import { OpenApiModule } from './openapi/openapi.module.js';
import { PlatformHealthModule } from './platform-health/platform-health.module.js';

/** gateway: the edge, the only public HTTP surface for apps and agents. One imported module per bounded context. */
@Module({ imports: [AuditModule, OpenApiModule, PlatformHealthModule] })
export class AppModule {}
