import { createPrismaAdapter } from '@context-gateway/database';
import { PG_POOL, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';

import { PrismaClient } from '../generated/prisma/client.js';

/** policy's Prisma client, on the runtime's pool (search_path = policy's schema). Only repositories inject it. */
export const POLICY_DB = Symbol('POLICY_DB');
export type PolicyDb = PrismaClient;
/** What a repository method takes to join a caller's transaction. */
export type Tx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

@Injectable()
class DbLifecycle implements OnApplicationShutdown {
  constructor(@Inject(POLICY_DB) private readonly db: PolicyDb) {}
  async onApplicationShutdown(): Promise<void> {
    // The pool belongs to the runtime; this only releases Prisma's own resources.
    await this.db.$disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: POLICY_DB,
      inject: [PG_POOL, SERVICE_INFO],
      useFactory: (pool: Pool, info: ServiceInfo) =>
        new PrismaClient({ adapter: createPrismaAdapter(pool, info.databaseSchema) }),
    },
    DbLifecycle,
  ],
  exports: [POLICY_DB],
})
export class DatabaseModule {}
