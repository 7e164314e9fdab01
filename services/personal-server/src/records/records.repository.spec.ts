import { describe, expect, it } from '@jest/globals';

import { pageFromRows, type PageRow } from './records.repository.js';

const GRANT_ROW: PageRow = {
  grant_id: 'g-1',
  grant_user_id: 'u-1',
  scopes: ['spotify:read:playlists'],
  seal: Buffer.from('seal'),
  consent_nonce: null,
  state: 'active',
  types: ['media.playlist'],
  synced_at: '2026-12-06 16:13:00.12+00',
  personal_server_id: 'ps-1',
  user_id: 'u-1',
  data_key_id: 'k-1',
  records_version: 3,
  id: null,
  type: null,
  external_id: null,
  ciphertext: null,
  source_updated_at: null,
  updated_at: null,
  deleted: null,
  version: null,
};

function recordRow(version: string): PageRow {
  return {
    grant_id: null,
    grant_user_id: null,
    scopes: null,
    seal: null,
    consent_nonce: null,
    state: null,
    types: null,
    synced_at: null,
    personal_server_id: null,
    user_id: null,
    data_key_id: null,
    records_version: null,
    id: `r-${version}`,
    type: 'media.playlist',
    external_id: `x-${version}`,
    ciphertext: Buffer.from(version),
    source_updated_at: '2026-12-06 16:13:00+00',
    updated_at: '2026-12-06 16:13:00.5+00',
    deleted: false,
    version,
  };
}

describe('pageFromRows', () => {
  it('reads the grant once and the records with their times in the API form', () => {
    const { grant, records } = pageFromRows([GRANT_ROW, recordRow('9'), recordRow('10')]);
    expect(grant).toMatchObject({
      id: 'g-1',
      consentNonce: '',
      syncedAt: new Date('2026-12-06T16:13:00.120Z'),
      recordsVersion: 3,
    });
    expect(records).toEqual([
      {
        id: 'r-9',
        type: 'media.playlist',
        externalId: 'x-9',
        ciphertext: Buffer.from('9'),
        sourceUpdatedAt: '2026-12-06T16:13:00.000Z',
        updatedAt: '2026-12-06T16:13:00.500Z',
        deleted: false,
        version: '9',
      },
      expect.objectContaining({ id: 'r-10', version: '10' }),
    ]);
  });

  it('an empty page still has its grant; no rows is no grant', () => {
    expect(pageFromRows([GRANT_ROW])).toEqual({ grant: expect.objectContaining({ id: 'g-1' }), records: [] });
    expect(pageFromRows([])).toEqual({ grant: undefined, records: [] });
  });

  it('puts rows that came out of order in version order, the grant row wherever it is', () => {
    const { grant, records } = pageFromRows([recordRow('10'), recordRow('2'), GRANT_ROW, recordRow('9')]);
    expect(grant?.id).toBe('g-1');
    expect(records.map((r) => r.version)).toEqual(['2', '9', '10']);
  });

  it('refuses records without a grant, and a row that is neither', () => {
    expect(() => pageFromRows([recordRow('1')])).toThrow('without a grant');
    expect(() => pageFromRows([{ ...GRANT_ROW, grant_id: null } as unknown as PageRow])).toThrow('neither');
  });
});
