import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { fromBinary } from '@bufbuild/protobuf';
import { systemClock } from '@context-gateway/clock';
import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { events, streams, SyncJobSchema, SyncReason } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';

import type { Env } from '../env.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { SyncScheduler } from './sync-scheduler.js';
import { SyncStateRepository } from './sync-state.repository.js';

/**
 * Several workers' schedulers against one database and one stream: each due connection
 * gets exactly one SCHEDULED job per interval, even when a scheduler dies between
 * publishing and recording that it did.
 */

describe('SyncScheduler with several workers', () => {
  let db: TestSchema;
  let prisma: PrismaClient;
  let nc: NatsConnection;
  // A private nats-server, so SYNC_JOBS starts empty for this file.
  let nats: PrivateNats;
  const logger = pino({ level: 'silent' });
  const env = { SYNC_INTERVAL_MS: 60_000, SYNC_SCHEDULER_TICK_MS: 1_000 } as Env;

  beforeAll(async () => {
    nats = await startPrivateNats();
    nc = await connect({ servers: nats.url });
    await ensureStreams(nc, [streams.syncJobs], logger);
    db = await createTestSchema({
      prefix: 'sync_scheduler',
      migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
    });
    prisma = new PrismaClient({ adapter: createPrismaAdapter(db.pool, db.schema) });
  }, 60_000);

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
    await nc?.close();
    await nats?.stop();
  });

  // Real time: which rows are due is decided by Postgres' now(), against the times seeded below.
  const scheduler = () =>
    new SyncScheduler(new SyncStateRepository(prisma), new JetStreamPublisher(nc), env, logger, systemClock);

  async function queuedJobs(): Promise<{ connectionId: string; reason: SyncReason }[]> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(streams.syncJobs.name);
    const jobs = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(streams.syncJobs.name, { seq }).catch(() => undefined);
      if (m) jobs.push(fromBinary(SyncJobSchema, m.data));
    }
    return jobs;
  }

  it('queues each due connection exactly once across concurrent schedulers, and not again within the interval', async () => {
    const ids = Array.from({ length: 60 }, () => randomUUID());
    const past = new Date(Date.now() - 1_000);
    await prisma.syncState.createMany({
      data: ids.map((connectionId) => ({ connectionId, state: 'idle', nextRunAt: past, integration: 'github' })),
    });
    // One more that is not due, and one that needs the user to connect again.
    await prisma.syncState.create({ data: { connectionId: randomUUID(), nextRunAt: new Date(Date.now() + 60_000) } });
    await prisma.syncState.create({ data: { connectionId: randomUUID(), state: 'needs_reauth', nextRunAt: past } });

    const workers = [scheduler(), scheduler(), scheduler()];
    await Promise.all([...workers, ...workers].map((w) => w.tick()));

    const jobs = await queuedJobs();
    expect(jobs.map((j) => j.connectionId).sort()).toEqual([...ids].sort());
    expect(jobs.every((j) => j.reason === SyncReason.SCHEDULED)).toBe(true);
    const states = await prisma.syncState.findMany({ where: { connectionId: { in: ids } } });
    expect(states.every((s) => s.state === 'queued' && s.nextRunAt! > new Date(Date.now() + 50_000))).toBe(true);
  });

  it('a scheduler that dies after publishing, before recording it, causes no second job for that slot', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(streams.syncJobs.name);
    const connectionId = randomUUID();
    await prisma.syncState.create({ data: { connectionId, state: 'idle', nextRunAt: new Date(Date.now() - 1_000) } });

    // A repository whose transaction fails right after the publish: the row stays due.
    const dying = new SyncStateRepository(prisma);
    const claimDue = dying.claimDue.bind(dying);
    dying.claimDue = (limit, interval, publish) =>
      claimDue(limit, interval, async (due) => {
        await publish(due);
        throw new Error('killed between publish and commit');
      });
    await expect(new SyncScheduler(dying, new JetStreamPublisher(nc), env, logger, systemClock).tick()).rejects.toThrow(
      'killed',
    );
    expect((await prisma.syncState.findUnique({ where: { connectionId } }))!.state).toBe('idle');

    // Another worker re-claims the same slot; its publish carries the same Nats-Msg-Id.
    await scheduler().tick();
    const jobs = (await queuedJobs()).filter((j) => j.connectionId === connectionId);
    expect(jobs).toHaveLength(1);
    expect((await prisma.syncState.findUnique({ where: { connectionId } }))!.state).toBe('queued');
  });

  it('a connection whose source has no API (file export) is never queued again once it awaits imports; its imports still count', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(streams.syncJobs.name);
    const connectionId = randomUUID();
    const repo = new SyncStateRepository(prisma);
    // The INITIAL job claimed it and learnt from the broker that there is nothing to pull.
    expect(await repo.claim(connectionId, 'w1', 30_000)).not.toBeNull();
    await repo.failRun(connectionId, 'other-worker', {
      state: 'failed',
      error: 'x',
      nextRunAt: new Date(Date.now() - 1_000),
    });
    await repo.awaitImport(connectionId, 'w1');
    await repo.recordImport(connectionId, 'netflix', 3, new Date());
    await scheduler().tick();
    expect((await queuedJobs()).filter((j) => j.connectionId === connectionId)).toEqual([]);
    expect(await prisma.syncState.findUnique({ where: { connectionId } })).toEqual(
      expect.objectContaining({ state: 'idle', lastError: null, nextRunAt: null, leaseOwner: null, recordsSynced: 3n }),
    );
  });

  it('the stream refuses a second copy of an event with the same job id (what the slot id relies on)', async () => {
    const publisher = new JetStreamPublisher(nc);
    const job = {
      jobId: randomUUID(),
      connectionId: randomUUID(),
      reason: SyncReason.SCHEDULED,
      requestedAt: { seconds: 1n, nanos: 0 },
    };
    expect((await publisher.publish(events.syncJobRequested, job)).duplicate).toBe(false);
    expect((await publisher.publish(events.syncJobRequested, job)).duplicate).toBe(true);
  });
});
