import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';

import { createPool, type PoolOptions } from './pool.js';
import { assertSchemaName } from './schema-name.js';

/**
 * The driver adapter a service's generated client needs: `new PrismaClient({ adapter })`.
 *
 * Given a pool, the adapter shares it (and never ends it: the pool's owner does). Given
 * pool options, it owns a new pool and ends it on `$disconnect()`. Either way Prisma
 * qualifies its queries with `schema`, matching the pool's search_path.
 */
export function createPrismaAdapter(pool: pg.Pool, schema: string): PrismaPg;
export function createPrismaAdapter(options: PoolOptions): PrismaPg;
export function createPrismaAdapter(source: pg.Pool | PoolOptions, schema?: string): PrismaPg {
  if (source instanceof pg.Pool) {
    if (schema === undefined) throw new TypeError('createPrismaAdapter(pool, schema): schema is required with a pool');
    return new PrismaPg(source, { schema: assertSchemaName(schema) });
  }
  return new PrismaPg(createPool(source), { schema: assertSchemaName(source.schema), disposeExternalPool: true });
}
