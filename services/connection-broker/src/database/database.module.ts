import { createPrismaAdapter } from '@context-gateway/database';
import { PG_POOL, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';

import { PrismaClient } from '../generated/prisma/client.js';

/** connection-broker's Prisma client, on the runtime's pool (search_path = its schema). Only repositories inject it. */
export const BROKER_DB = Symbol('BROKER_DB');
export type BrokerDb = PrismaClient;
/** What a repository method takes to join a caller's transaction. */
export type Tx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

@Injectable()
class DbLifecycle implements OnApplicationShutdown {
  constructor(@Inject(BROKER_DB) private readonly db: BrokerDb) {}
  async onApplicationShutdown(): Promise<void> {
    await this.db.$disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: BROKER_DB,
      inject: [PG_POOL, SERVICE_INFO],
      useFactory: (pool: Pool, info: ServiceInfo) =>
        new PrismaClient({ adapter: createPrismaAdapter(pool, info.databaseSchema) }),
    },
    DbLifecycle,
  ],
  exports: [BROKER_DB],
})
export class DatabaseModule {}
