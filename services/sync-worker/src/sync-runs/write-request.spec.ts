import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { DeletedRecord, NormalizedRecord, SkippedItem } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { WriteRecordsRequestSchema } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { writeQuarantining } from './quarantine.js';
import { encodeWriteRecords, type WriteTarget } from './write-request.js';

/** What the worker sent before: a body per record through TextEncoder, then the generic encoder. */
function generic(target: WriteTarget, upserts: NormalizedRecord[], deletes: DeletedRecord[]): Uint8Array {
  const encoder = new TextEncoder();
  const records = [
    ...upserts.map((r) => {
      const occurred = r.occurredAt ? new Date(r.occurredAt) : undefined;
      return {
        type: r.type,
        externalId: r.externalId,
        dataJson: encoder.encode(JSON.stringify(r.data)),
        ...(occurred && !Number.isNaN(occurred.getTime()) ? { sourceUpdatedAt: timestampFromDate(occurred) } : {}),
      };
    }),
    ...deletes.map((d) => ({ type: d.type, externalId: d.externalId, deleted: true })),
  ];
  return toBinary(
    WriteRecordsRequestSchema,
    create(WriteRecordsRequestSchema, {
      userId: target.userId,
      connectionId: target.connectionId,
      integration: target.integration,
      records,
      syncedAt: timestampFromDate(target.syncedAt),
    }),
  );
}

/** Bytes as hex, 32 to a line: a mismatch shows as the few lines that differ. */
const hexLines = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex').replace(/.{64}/g, '$&\n');

const expectSame = (target: WriteTarget, upserts: NormalizedRecord[], deletes: DeletedRecord[]) => {
  const encoded = encodeWriteRecords(target, upserts, deletes);
  expect(encoded.schema.typeName).toBe(WriteRecordsRequestSchema.typeName);
  expect(hexLines(encoded.bytes)).toBe(hexLines(generic(target, upserts, deletes)));
};

const target: WriteTarget = {
  userId: '3f1c6a3e-8c1e-4f0e-9a55-0d5b1f8f2a11',
  connectionId: '7b2d0e8e-1c4a-4d0f-8f9e-2a6c3b5d4e10',
  integration: 'github',
  syncedAt: new Date('2026-12-07T07:55:01.234Z'),
};
const repository = (id: number, occurredAt?: string): NormalizedRecord => ({
  type: 'code.repository',
  externalId: String(id),
  ...(occurredAt === undefined ? {} : { occurredAt }),
  data: { source: 'github', id: String(id), fullName: `octo/repo-${id}`, private: false, url: 'https://github.com/x' },
});

/** Any UTF-16 code unit, lone surrogates included (both encoders write those as U+FFFD). */
const anyText = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
/** Every time a Date can hold, before 1970 included. */
const anyTime = fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 });
const jsonValue = fc.oneof(
  anyText,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(anyText, { maxLength: 3 }),
);

describe('encodeWriteRecords', () => {
  it.each<[string, NormalizedRecord[], DeletedRecord[], Partial<WriteTarget>?]>([
    ['nothing to write', [], []],
    ['one record without a time', [repository(1)], []],
    ['one record with a time', [repository(2, '2026-01-02T03:04:05.678Z')], []],
    [
      'a time on a whole second, and the epoch',
      [repository(3, '2026-01-02T03:04:05Z'), repository(4, '1970-01-01T00:00:00Z')],
      [],
    ],
    ['a time before 1970', [repository(5, '1969-07-20T20:17:40.5Z')], []],
    ['a time that does not parse, and an empty one', [repository(6, 'yesterday'), repository(7, '')], []],
    ['tombstones only', [], [{ type: 'code.repository', externalId: '9' }]],
    [
      'upserts, then tombstones',
      [repository(10), repository(11, '2020-02-29T12:00:00.001+02:00')],
      [{ type: 'code.star', externalId: '12' }],
    ],
    [
      'empty strings left out',
      [{ type: '', externalId: '', data: {} }],
      [{ type: '', externalId: '' }],
      { integration: '' },
    ],
    [
      'text beyond ASCII',
      [{ type: 'code.issue', externalId: 'é✓🙂', data: { title: 'naïve ✓ 🙂 \udfffa\ud800' } }],
      [],
    ],
    ['synced at the epoch', [repository(13)], [], { syncedAt: new Date(0) }],
    ['synced before 1970', [repository(14)], [], { syncedAt: new Date(-1) }],
  ])('writes %s as toBinary does', (...row) => {
    // Spread, not four parameters: Jest would take a fourth as a `done` callback.
    const [, upserts, deletes, over] = row;
    expectSame({ ...target, ...over }, upserts, deletes);
  });

  it('writes bodies and records on either side of each varint length step as toBinary does', () => {
    // A body's JSON is its text plus `{"t":""}` (8 bytes); a record adds its type and id.
    for (const edge of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
      for (const delta of [-12, -9, -8, -7, 0, 1]) {
        const text = 'a'.repeat(Math.max(0, edge + delta));
        expectSame(target, [{ type: 't', externalId: 'i', data: { t: text } }], []);
      }
  });

  it('writes a full 500-record write as toBinary does', () => {
    const upserts = Array.from({ length: 500 }, (_, i) =>
      repository(i, new Date(1_700_000_000_000 + i * 997).toISOString()),
    );
    expectSame(target, upserts, []);
  });

  it('writes any records as toBinary does', () => {
    const upsert = fc.record({
      type: anyText,
      externalId: anyText,
      occurredAt: fc.option(
        fc.oneof(
          anyTime.map((ms) => new Date(ms).toISOString()),
          anyText,
        ),
        { nil: undefined },
      ),
      data: fc.dictionary(anyText, jsonValue, { maxKeys: 6 }),
    });
    fc.assert(
      fc.property(
        fc.array(upsert, { maxLength: 8 }),
        fc.array(fc.record({ type: anyText, externalId: anyText }), { maxLength: 3 }),
        fc.record({
          userId: anyText,
          connectionId: anyText,
          integration: anyText,
          syncedAt: anyTime.map((ms) => new Date(ms)),
        }),
        (upserts, deletes, to) => {
          const records = upserts.map(({ occurredAt, ...r }) => (occurredAt === undefined ? r : { ...r, occurredAt }));
          expectSame(to, records, deletes);
        },
      ),
      { numRuns: 500 },
    );
  });

  /** What a connector may hand over despite the types: the source's JSON is not checked by tsc. */
  const loose = (r: Record<string, unknown>) => r as unknown as NormalizedRecord;
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;

  it.each<[string, NormalizedRecord[], DeletedRecord[], string]>([
    ['a number as type', [repository(1), loose({ type: 7, externalId: 'x', data: {} })], [], 'records[1].type'],
    ['a missing external id', [loose({ type: 'code.repository', data: {} })], [], 'records[0].externalId'],
    ['an object as external id', [loose({ type: 't', externalId: { id: 1 }, data: {} })], [], 'records[0].externalId'],
    ['no data', [repository(1), repository(2), loose({ type: 't', externalId: 'x' })], [], 'records[2].data'],
    ['a BigInt in the data', [loose({ type: 't', externalId: 'x', data: { n: 1n } })], [], 'records[0].data'],
    ['a cycle in the data', [loose({ type: 't', externalId: 'x', data: cyclic })], [], 'records[0].data'],
    [
      'a tombstone without an id',
      [repository(1)],
      [{ type: 'code.star', externalId: '2' }, { type: 'code.star' } as unknown as DeletedRecord],
      'records[2].externalId',
    ],
  ])('refuses %s as invalid_record naming the record', (...row) => {
    const [, upserts, deletes, path] = row;
    let thrown: unknown;
    try {
      encodeWriteRecords(target, upserts, deletes);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    expect(thrown).toMatchObject({ code: 'invalid_record', problems: [{ path }] });
  });

  it('a run target with a non-string id is an internal error, not a record to quarantine', () => {
    const bad = { ...target, userId: undefined } as unknown as WriteTarget;
    expect(() => encodeWriteRecords(bad, [repository(1)], [])).toThrow(expect.objectContaining({ code: 'internal' }));
  });

  it('the run quarantines a record it cannot encode and writes the rest', async () => {
    const sent: string[] = [];
    const write = (batch: { upserts: NormalizedRecord[]; deletes: DeletedRecord[] }) => {
      encodeWriteRecords(target, batch.upserts, batch.deletes);
      sent.push(...batch.upserts.map((r) => r.externalId));
      return Promise.resolve();
    };
    const skipped: SkippedItem[] = [];
    const upserts = [repository(1), loose({ type: 'code.repository', externalId: 'no-body' }), repository(3)];
    await writeQuarantining(write, { upserts, deletes: [] }, (item) => skipped.push(item));
    expect(sent.sort()).toEqual(['1', '3']);
    expect(skipped).toEqual([
      {
        kind: 'invalid_record',
        resource: 'code.repository/no-body',
        reason: expect.stringContaining('records[0].data: not serializable as JSON') as unknown,
      },
    ]);
  });
});
