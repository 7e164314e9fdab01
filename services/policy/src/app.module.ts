import { StorableStringsInterceptor } from '@context-gateway/messaging';
import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';

import { ControlEventsModule } from './control-events/control-events.module.js';
import { DatabaseModule } from './database/database.module.js';
import { RulesModule } from './rules/rules.module.js';

/** policy: the three policy layers and their decisions. One imported module per bounded context. */
@Module({
  imports: [DatabaseModule, RulesModule, ControlEventsModule],
  // Every NATS request's strings are held to what Postgres can store, before any handler runs
  // (a NUL reached the database as `internal` until the fuzzer sent one: docs/fuzzing.md).
  providers: [{ provide: APP_INTERCEPTOR, useClass: StorableStringsInterceptor }],
})
export class AppModule {}
