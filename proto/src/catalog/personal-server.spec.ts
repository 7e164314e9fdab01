import { create } from '@bufbuild/protobuf';
import { type Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';

import {
  QueryRecordsRequestSchema,
  WriteRecordsRequestSchema,
} from '../gen/contextgateway/personalserver/v1/personal_server_pb.js';
import { personalServerRpc } from './personal-server.js';

describe('ps.v1.write_records validation', () => {
  const problems = (records: { type: string; externalId: string; sourceUpdatedAt?: Timestamp }[]) =>
    personalServerRpc.writeRecords.validate?.(
      create(WriteRecordsRequestSchema, {
        userId: '0193a1b2-0000-7000-8000-000000000001',
        connectionId: '0193a1b2-0000-7000-8000-000000000002',
        integration: 'github',
        records,
      }),
    ) ?? [];

  it('takes records with a type and an external id of at most 512 characters', () => {
    expect(problems([{ type: 'code.repository', externalId: 'x'.repeat(512) }])).toEqual([]);
  });

  it('refuses a source time a Date and Postgres cannot hold, and takes one before 1970', () => {
    const at = (seconds: bigint, nanos = 0) => ({
      type: 'code.repository',
      externalId: '1',
      sourceUpdatedAt: create(TimestampSchema, { seconds, nanos }),
    });
    expect(problems([at(-1n, 999_000_000), at(-2_208_988_800n, 1_000_000)])).toEqual([]);
    expect(problems([at(0n), at(253_402_300_800n), at(0n, 1_000_000_000)])).toEqual([
      { path: 'records[1].sourceUpdatedAt', message: 'must be a timestamp between the years 1 and 9999' },
      { path: 'records[2].sourceUpdatedAt', message: 'must be a timestamp between the years 1 and 9999' },
    ]);
  });

  it('refuses a sync time a Date and Postgres cannot hold (the connection stores it)', () => {
    const write = (seconds: bigint) =>
      personalServerRpc.writeRecords.validate?.(
        create(WriteRecordsRequestSchema, {
          userId: '0193a1b2-0000-7000-8000-000000000001',
          connectionId: '0193a1b2-0000-7000-8000-000000000002',
          integration: 'github',
          syncedAt: create(TimestampSchema, { seconds }),
        }),
      );
    expect(write(1_700_000_000n)).toEqual([]);
    expect(write(-(2n ** 63n))).toEqual([
      { path: 'syncedAt', message: 'must be a timestamp between the years 1 and 9999' },
    ]);
  });

  it('names each failing field of each failing record, and only those', () => {
    expect(
      problems([
        { type: 'code.repository', externalId: '1' },
        { type: ' ', externalId: '2' },
        { type: 'code.repository', externalId: '' },
        { type: 'code.repository', externalId: 'x'.repeat(513) },
      ]),
    ).toEqual([
      { path: 'records[1].type', message: 'must not be empty' },
      { path: 'records[2].externalId', message: 'must not be empty' },
      { path: 'records[3].externalId', message: 'must be at most 512 characters' },
    ]);
  });
});

describe('ps.v1.shard.<n>.query validation', () => {
  const base = {
    orgId: '0193a1b2-0000-7000-8000-000000000001',
    applicationId: '0193a1b2-0000-7000-8000-000000000002',
    connectionId: '0193a1b2-0000-7000-8000-000000000003',
    limit: 20,
  };
  const problems = (extra: { type?: string; sinceMs?: bigint; policyTypes?: string[] }) =>
    personalServerRpc.shardQuery.validate?.(create(QueryRecordsRequestSchema, { ...base, ...extra })) ?? [];

  it('takes a typed change feed from any time a Date can hold, and a time before 1970 as "from the start"', () => {
    expect(
      problems({ type: 'media.playlist', sinceMs: 253_402_300_799_999n, policyTypes: ['media.playlist'] }),
    ).toEqual([]);
    // 9999-12-31T23:59:59.999-05:00, which the gateway takes: a time in the year 10000.
    expect(problems({ sinceMs: 253_402_318_799_999n })).toEqual([]);
    // The last millisecond a Date holds, 275760-09-13T00:00:00.000Z.
    expect(problems({ sinceMs: 8_640_000_000_000_000n })).toEqual([]);
    expect(problems({ sinceMs: -(2n ** 63n) })).toEqual([]);
  });

  it('refuses what would reach Postgres or a Date as an error: a NUL in a type, a time no Date can hold', () => {
    expect(
      problems({ type: 'media.\u0000playlist', sinceMs: 8_640_000_000_000_001n, policyTypes: ['a', 'b\u0000'] }),
    ).toEqual([
      { path: 'type', message: 'must not contain a NUL character' },
      { path: 'sinceMs', message: 'must be a time a Date can hold' },
      { path: 'policyTypes[1]', message: 'must not contain a NUL character' },
    ]);
  });
});
