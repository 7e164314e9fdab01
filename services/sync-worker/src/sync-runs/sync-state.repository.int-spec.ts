import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { PrismaClient } from '../generated/prisma/client.js';
import { SyncStateRepository } from './sync-state.repository.js';

describe('SyncStateRepository against Postgres', () => {
  let db: TestSchema;
  let prisma: PrismaClient;
  let states: SyncStateRepository;

  beforeAll(async () => {
    db = await createTestSchema({
      prefix: 'sync_state',
      migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
    });
    prisma = new PrismaClient({ adapter: createPrismaAdapter(db.pool, db.schema) });
    states = new SyncStateRepository(prisma);
  }, 60_000);

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  it('adds each committed write to that connection only, and stops a run whose row is gone', async () => {
    const [mine, other] = [randomUUID(), randomUUID()];
    await states.claim(mine, 'worker-a', 60_000);
    await states.claim(other, 'worker-b', 60_000);
    const before = (await states.get(mine))?.updatedAt;
    await states.addRecords(mine, 500);
    await states.addRecords(mine, 0);
    await states.addRecords(mine, 37);
    const row = await states.get(mine);
    expect(row?.recordsSynced).toBe(537n);
    expect(row?.updatedAt.getTime()).toBeGreaterThanOrEqual(before?.getTime() ?? Infinity);
    expect((await states.get(other))?.recordsSynced).toBe(0n);
    // Past 2^31: the column is a bigint, and so is the sum.
    await states.addRecords(mine, 2 ** 31);
    expect((await states.get(mine))?.recordsSynced).toBe(537n + 2n ** 31n);
    // Concurrent writes of one run: each adds in the database, none is lost to another.
    await Promise.all(Array.from({ length: 20 }, () => states.addRecords(mine, 7)));
    expect((await states.get(mine))?.recordsSynced).toBe(537n + 2n ** 31n + 140n);
    expect((await states.get(other))?.recordsSynced).toBe(0n);

    await states.forget(mine, 'worker-a');
    await expect(states.addRecords(mine, 1)).rejects.toMatchObject({ code: 'conflict' });
  });
});
