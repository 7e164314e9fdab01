import { Module } from '@nestjs/common';

import { GrantChangesConsumer } from './grant-changes.consumer.js';
import { GrantsModule } from './grants.module.js';

/** Revocations caught up from the CONTROL stream (separate so storage tests run without JetStream). */
@Module({ imports: [GrantsModule], providers: [GrantChangesConsumer] })
export class GrantChangesModule {}
