import type { DeletedRecord, NormalizedRecord } from '@context-gateway/connectors';
import { MAX_RECORDS_PER_WRITE } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';

import { writeChunks } from './record-writer.js';

const upserts = (n: number): NormalizedRecord[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'code.repository', externalId: `u${i}`, data: {} }));
const deletes = (n: number): DeletedRecord[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'code.star', externalId: `d${i}` }));

/** Each write as `upserts+tombstones first..last`. */
const shape = (u: number, d: number) =>
  writeChunks(upserts(u), deletes(d), MAX_RECORDS_PER_WRITE).map((c) => {
    const ids = [...c.upserts, ...c.deletes].map((r) => r.externalId);
    return `${c.upserts.length}+${c.deletes.length} ${ids[0]}..${ids.at(-1)}`;
  });

describe('writeChunks', () => {
  it('writes 500 records to a request', () => {
    expect(MAX_RECORDS_PER_WRITE).toBe(500);
  });

  it.each<[number, number, string[]]>([
    [300, 400, ['300+200 u0..d199', '0+200 d200..d399']],
    [500, 1, ['500+0 u0..u499', '0+1 d0..d0']],
    [0, 1001, ['0+500 d0..d499', '0+500 d500..d999', '0+1 d1000..d1000']],
    [1000, 0, ['500+0 u0..u499', '500+0 u500..u999']],
  ])('%i upserts + %i tombstones: upserts first, a write may end with tombstones, none empty', (u, d, writes) => {
    expect(shape(u, d)).toEqual(writes);
  });

  it('nothing: no write', () => {
    expect(shape(0, 0)).toEqual([]);
  });

  it('every record once, in order, for any counts', () => {
    for (const [u, d] of [
      [1, 1],
      [499, 2],
      [501, 499],
      [777, 1234],
    ] as const) {
      const chunks = writeChunks(upserts(u), deletes(d), MAX_RECORDS_PER_WRITE);
      expect(chunks.every((c) => c.upserts.length + c.deletes.length <= MAX_RECORDS_PER_WRITE)).toBe(true);
      expect(chunks.flatMap((c) => [...c.upserts, ...c.deletes].map((r) => r.externalId))).toEqual([
        ...upserts(u).map((r) => r.externalId),
        ...deletes(d).map((r) => r.externalId),
      ]);
    }
  });
});
