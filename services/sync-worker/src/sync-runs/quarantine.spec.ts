import type { NormalizedRecord, SkippedItem, SyncBatch } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';

import { writeQuarantining } from './quarantine.js';

const playlist = (id: string, name: string | undefined): NormalizedRecord => ({
  type: 'media.playlist',
  externalId: id,
  data: { source: 'spotify', id, ...(name === undefined ? {} : { name }) },
});

/** A store that, like the Personal Server, refuses a whole write when one record lacks its name. */
function store() {
  const written: string[] = [];
  const tombstoned: string[] = [];
  const write = (batch: SyncBatch): Promise<void> => {
    if (batch.upserts.some((r) => r.data.name === undefined))
      return Promise.reject(
        new AppError('invalid_record', 'The body does not match record type "media.playlist"', [
          { path: 'name', message: 'Invalid input: expected string, received undefined' },
        ]),
      );
    written.push(...batch.upserts.map((r) => r.externalId));
    tombstoned.push(...batch.deletes.map((d) => d.externalId));
    return Promise.resolve();
  };
  return { written, tombstoned, write };
}

describe('writeQuarantining', () => {
  it('a playlist with a null name is quarantined with its reason; the rest of its batch is written', async () => {
    const s = store();
    const skipped: SkippedItem[] = [];
    const upserts = Array.from({ length: 37 }, (_, i) => playlist(`p${i}`, i === 23 ? undefined : `list ${i}`));
    await writeQuarantining(s.write, { upserts, deletes: [{ type: 'media.playlist', externalId: 'gone' }] }, (k) =>
      skipped.push(k),
    );
    expect(s.written.sort()).toEqual(
      upserts
        .map((r) => r.externalId)
        .filter((id) => id !== 'p23')
        .sort(),
    );
    expect(s.tombstoned).toEqual(['gone']);
    expect(skipped).toEqual([
      {
        kind: 'invalid_record',
        resource: 'media.playlist/p23',
        reason: expect.stringContaining('name: Invalid input') as unknown,
      },
    ]);
  });

  it('a tombstone whose external id is not a string is quarantined before the write; the rest is written', async () => {
    const s = store();
    const skipped: SkippedItem[] = [];
    const deletes = [
      { type: 'media.playlist', externalId: 'gone' },
      { type: 'media.playlist', externalId: 42 as unknown as string },
    ];
    await writeQuarantining(s.write, { upserts: [playlist('a', 'x')], deletes }, (k) => skipped.push(k));
    expect([s.written, s.tombstoned]).toEqual([['a'], ['gone']]);
    expect(skipped).toEqual([
      {
        kind: 'invalid_record',
        resource: 'media.playlist/42',
        reason: 'The tombstone cannot be sent: its externalId is not a string',
      },
    ]);

    // A batch of nothing but such tombstones writes nothing at all.
    const alone = store();
    let writes = 0;
    const counting = (batch: SyncBatch) => {
      writes++;
      return alone.write(batch);
    };
    await writeQuarantining(
      counting,
      { upserts: [], deletes: [{ type: null as unknown as string, externalId: 'x' }] },
      (k) => skipped.push(k),
    );
    expect(writes).toBe(0);
    expect(skipped[1]).toMatchObject({ resource: 'null/x', reason: expect.stringContaining('its type') as unknown });
  });

  it('any other failure still fails the write (the run is retried)', async () => {
    const failing = () => Promise.reject(new AppError('service_unavailable'));
    await expect(
      writeQuarantining(failing, { upserts: [playlist('a', 'x')], deletes: [] }, () => undefined),
    ).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});
