import { createPrismaAdapter } from '@context-gateway/database';
import { PG_POOL, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';

import { PrismaClient } from '../generated/prisma/client.js';

/** identity's Prisma client, on the runtime's pool (search_path = identity's schema). Only repositories inject it. */
export const IDENTITY_DB = Symbol('IDENTITY_DB');
export type IdentityDb = PrismaClient;
/** What a repository method takes to join a caller's transaction. */
export type Tx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

@Injectable()
class DbLifecycle implements OnApplicationShutdown {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}
  async onApplicationShutdown(): Promise<void> {
    // The pool belongs to the runtime; this only releases Prisma's own resources.
    await this.db.$disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: IDENTITY_DB,
      inject: [PG_POOL, SERVICE_INFO],
      useFactory: (pool: Pool, info: ServiceInfo) =>
        new PrismaClient({ adapter: createPrismaAdapter(pool, info.databaseSchema) }),
    },
    DbLifecycle,
  ],
  exports: [IDENTITY_DB],
})
export class DatabaseModule {}
