import { create } from '@bufbuild/protobuf';

import { WriteRecordsRequestSchema } from '../gen/contextgateway/personalserver/v1/personal_server_pb.js';
import { personalServerRpc } from './personal-server.js';

describe('ps.v1.write_records validation', () => {
  const problems = (records: { type: string; externalId: string }[]) =>
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
