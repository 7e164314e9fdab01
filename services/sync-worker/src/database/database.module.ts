import { createPrismaAdapter } from '@context-gateway/database';
import { PG_POOL, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';

import { PrismaClient } from '../generated/prisma/client.js';

/** sync-worker's Prisma client, on the runtime's pool (search_path = its schema). Only repositories inject it. */
export const SYNC_DB = Symbol('SYNC_DB');
export type SyncDb = PrismaClient;

@Injectable()
class DbLifecycle implements OnApplicationShutdown {
  constructor(@Inject(SYNC_DB) private readonly db: SyncDb) {}
  async onApplicationShutdown(): Promise<void> {
    await this.db.$disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: SYNC_DB,
      inject: [PG_POOL, SERVICE_INFO],
      useFactory: (pool: Pool, info: ServiceInfo) =>
        new PrismaClient({ adapter: createPrismaAdapter(pool, info.databaseSchema) }),
    },
    DbLifecycle,
  ],
  exports: [SYNC_DB],
})
export class DatabaseModule {}
