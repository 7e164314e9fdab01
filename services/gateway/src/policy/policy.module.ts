import { Module } from '@nestjs/common';

import { PolicyController } from './policy.controller.js';
import { PolicyDecider } from './policy-decider.js';

/** The three-layer check (PolicyDecider, for every module that serves data or tools) and the policy API. */
@Module({ controllers: [PolicyController], providers: [PolicyDecider], exports: [PolicyDecider] })
export class PolicyModule {}
