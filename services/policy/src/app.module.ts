import { Module } from '@nestjs/common';

import { ControlEventsModule } from './control-events/control-events.module.js';
import { DatabaseModule } from './database/database.module.js';
import { RulesModule } from './rules/rules.module.js';

/** policy: the three policy layers and their decisions. One imported module per bounded context. */
@Module({ imports: [DatabaseModule, RulesModule, ControlEventsModule] })
export class AppModule {}
