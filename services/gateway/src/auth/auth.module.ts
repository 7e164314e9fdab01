import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';

import { AuthGuard } from './auth.guard.js';
import { AuthStrategies } from './auth.strategies.js';

/** Authentication for every route, from its @Route({ auth }) definition (see auth.types.ts). */
@Global()
@Module({ providers: [AuthStrategies, { provide: APP_GUARD, useClass: AuthGuard }], exports: [AuthStrategies] })
export class AuthModule {}
