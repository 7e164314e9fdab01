import type { SyncBatch } from '@context-gateway/connectors';
import { describe, expect, it } from '@jest/globals';

import { WritePipeline } from './write-pipeline.js';

const rec = (i: number) => ({ type: 'code.repository', externalId: String(i), data: { i } });
const tick = () => new Promise((r) => setTimeout(r, 1));

describe('WritePipeline', () => {
  it('gathers upserts into full writes, keeps at most N in flight, and drains everything', async () => {
    const writes: SyncBatch[] = [];
    let inFlight = 0;
    let peak = 0;
    const pipeline = new WritePipeline(
      async (b) => {
        peak = Math.max(peak, ++inFlight);
        await tick();
        writes.push(b);
        inFlight--;
      },
      250,
      3,
    );
    for (let page = 0; page < 20; page++)
      await pipeline.add({ upserts: Array.from({ length: 100 }, (_, i) => rec(page * 100 + i)), deletes: [] });
    await pipeline.drain();
    expect(writes.map((w) => w.upserts.length)).toEqual([...Array(8).fill(250)]);
    expect(new Set(writes.flatMap((w) => w.upserts.map((u) => u.externalId))).size).toBe(2000);
    expect(peak).toBe(3);
  });

  it('writes a tombstone only after every earlier upsert committed', async () => {
    const log: string[] = [];
    const pipeline = new WritePipeline(
      async (b) => {
        await new Promise((r) => setTimeout(r, b.upserts.length ? 10 : 0));
        log.push(b.deletes.length ? 'delete' : `upsert:${b.upserts.length}`);
      },
      2,
      4,
    );
    await pipeline.add({ upserts: [rec(1), rec(2), rec(3)], deletes: [] });
    await pipeline.add({ upserts: [], deletes: [{ type: 'code.repository', externalId: '3' }] });
    await pipeline.drain();
    expect(log).toEqual(['upsert:2', 'upsert:1', 'delete']);
  });

  it('a failed write fails the run instead of being skipped', async () => {
    const pipeline = new WritePipeline(
      (b) =>
        b.upserts.some((u) => u.externalId === '5') ? Promise.reject(new Error('store down')) : Promise.resolve(),
      2,
      2,
    );
    await expect(
      (async () => {
        for (let i = 0; i < 10; i++) await pipeline.add({ upserts: [rec(i)], deletes: [] });
        await pipeline.drain();
      })(),
    ).rejects.toThrow('store down');
  });
});
