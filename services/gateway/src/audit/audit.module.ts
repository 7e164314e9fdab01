import { Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';

import { AuditRecorder } from './audit-recorder.js';
import { AuditRouteInterceptor } from './audit-route.interceptor.js';

/**
 * The gateway's audit recorder. Global, so any gateway module can inject AuditRecorder
 * (importing AuditModule explicitly also works); the route interceptor is registered app-wide
 * and acts only on routes whose @Route definition has `audit`. See docs/audit.md.
 */
@Global()
@Module({
  providers: [AuditRecorder, { provide: APP_INTERCEPTOR, useClass: AuditRouteInterceptor }],
  exports: [AuditRecorder],
})
export class AuditModule {}
