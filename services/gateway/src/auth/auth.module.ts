import { NATS_CONNECTION, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { Pool } from 'pg';

import type { Env } from '../env.js';
import { AuthFailureLimit } from '../http/rate-limits.js';
import { ControlHead } from '../policy/control-head.js';
import { ApiKeyCache } from './api-key-cache.js';
import { AuthGuard } from './auth.guard.js';
import { AuthStrategies } from './auth.strategies.js';

/** Authentication for every route, from its @Route({ auth }) definition (see auth.types.ts). */
@Global()
@Module({
  providers: [
    AuthStrategies,
    ApiKeyCache,
    // One question "how far is CONTROL?" per request, for the key, token and policy checks alike.
    { provide: ControlHead, inject: [NATS_CONNECTION], useFactory: (nc: NatsConnection) => new ControlHead(nc) },
    {
      provide: AuthFailureLimit,
      inject: [PG_POOL, SERVICE_ENV],
      useFactory: (pool: Pool, env: Env) =>
        new AuthFailureLimit(env.AUTH_FAILURES_PER_IP, {
          pool,
          windowSeconds: env.AUTH_FAILURE_WINDOW_SECONDS,
          storeTimeoutMs: env.RATE_LIMIT_STORE_TIMEOUT_MS,
          replicas: env.RATE_LIMIT_REPLICAS,
        }),
    },
    // One instance: Nest's global guard, and the guard of the direct routes (src/http/direct-routes.ts).
    AuthGuard,
    { provide: APP_GUARD, useExisting: AuthGuard },
  ],
  exports: [AuthStrategies, ControlHead, AuthGuard],
})
export class AuthModule {}
