import { StorableStringsInterceptor } from '@context-gateway/messaging';
import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';

import { AuditorsModule } from './auditors/auditors.module.js';
import { LogModule } from './log/log.module.js';

/** audit: the tamper-evident audit log. One imported module per bounded context. */
@Module({
  imports: [LogModule, AuditorsModule],
  // Every NATS request's strings are held to what Postgres can store, before any handler runs
  // (a NUL reached the database as `internal` until the fuzzer sent one: docs/fuzzing.md).
  providers: [{ provide: APP_INTERCEPTOR, useClass: StorableStringsInterceptor }],
})
export class AppModule {}
