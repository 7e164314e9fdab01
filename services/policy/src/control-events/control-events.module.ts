import { Module } from '@nestjs/common';

import { RulesModule } from '../rules/rules.module.js';
import { ControlEventsApplier } from './control-events.applier.js';
import { ControlEventsConsumer } from './control-events.consumer.js';

/** The derived defaults' sources: identity's application and the broker's grant facts, off CONTROL. */
@Module({
  imports: [RulesModule],
  providers: [ControlEventsApplier, ControlEventsConsumer],
  exports: [ControlEventsApplier],
})
export class ControlEventsModule {}
