import { describe, expect, it } from '@jest/globals';

import type { RowField } from './prepared-rows.js';
import { PAGE_COLUMN_NAMES, PageReader } from './records.repository.js';

/**
 * A page statement row as PreparedRows hands it over, in the statement's order: Postgres's
 * text per column, the bytea columns read in binary as their bytes; unnamed columns NULL.
 */
function row(values: Record<string, RowField>): RowField[] {
  for (const name of Object.keys(values)) if (!PAGE_COLUMN_NAMES.includes(name)) throw new Error(`no column ${name}`);
  return PAGE_COLUMN_NAMES.map((name) => values[name] ?? null);
}

const GRANT_ROW = row({
  grant_id: 'g-1',
  grant_user_id: 'u-1',
  scopes: '{spotify:read:playlists,"a \\"quoted\\" scope"}',
  seal: Buffer.from('seal'),
  consent_nonce: null,
  state: 'active',
  types: '{media.playlist}',
  synced_at: '2026-12-06 16:13:00.12+00',
  personal_server_id: 'ps-1',
  user_id: 'u-1',
  data_key_id: 'k-1',
  records_version: '3',
});

function recordRow(version: string, deleted = false): RowField[] {
  return row({
    id: `r-${version}`,
    type: 'media.playlist',
    external_id: `x-${version}`,
    ciphertext: Buffer.from(version),
    source_updated_at: '2026-12-06 16:13:00+00',
    updated_at: '2026-12-06 16:13:00.5+00',
    deleted: deleted ? 't' : 'f',
    version,
  });
}

function read(rows: RowField[][]) {
  const reader = new PageReader();
  for (const r of rows) reader.row(r);
  return reader.finish();
}

describe('PageReader', () => {
  it('reads the grant once and the records with their times in the API form', () => {
    const { grant, records } = read([GRANT_ROW, recordRow('9'), recordRow('10', true)]);
    expect(grant).toEqual({
      id: 'g-1',
      grantUserId: 'u-1',
      scopes: ['spotify:read:playlists', 'a "quoted" scope'],
      seal: Buffer.from('seal'),
      consentNonce: '',
      state: 'active',
      types: ['media.playlist'],
      syncedAt: new Date('2026-12-06T16:13:00.120Z'),
      personalServerId: 'ps-1',
      userId: 'u-1',
      dataKeyId: 'k-1',
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
      expect.objectContaining({ id: 'r-10', version: '10', deleted: true, ciphertext: Buffer.from('10') }),
    ]);
  });

  it('reads a revoked grant without seal or sync time', () => {
    const revoked = row({
      ...Object.fromEntries(PAGE_COLUMN_NAMES.map((name, i) => [name, GRANT_ROW[i] ?? null])),
      seal: null,
      synced_at: null,
      consent_nonce: 'n-1',
      state: 'revoked',
    });
    expect(read([revoked]).grant).toMatchObject({ seal: null, syncedAt: null, consentNonce: 'n-1', state: 'revoked' });
  });

  it('reads NULL scopes and types as null, as node-pg did (the seal check then refuses the grant)', () => {
    const nulls = row({
      ...Object.fromEntries(PAGE_COLUMN_NAMES.map((name, i) => [name, GRANT_ROW[i] ?? null])),
      scopes: null,
      types: null,
    });
    expect(read([nulls]).grant).toMatchObject({ id: 'g-1', scopes: null, types: null, state: 'active' });
  });

  it('an empty page still has its grant; no rows is no grant', () => {
    expect(read([GRANT_ROW])).toEqual({ grant: expect.objectContaining({ id: 'g-1' }), records: [] });
    expect(read([])).toEqual({ grant: undefined, records: [] });
  });

  it('puts rows that came out of order in version order, the grant row wherever it is', () => {
    const { grant, records } = read([recordRow('10'), recordRow('2'), GRANT_ROW, recordRow('9')]);
    expect(grant?.id).toBe('g-1');
    expect(records.map((r) => r.version)).toEqual(['2', '9', '10']);
  });

  it('refuses records without a grant, a row that is neither, and NULL where there cannot be one', () => {
    expect(() => read([recordRow('1')])).toThrow('without a grant');
    expect(() => read([row({ state: 'active' })])).toThrow('neither');
    expect(() =>
      read([GRANT_ROW, recordRow('1').map((v, i) => (PAGE_COLUMN_NAMES[i] === 'version' ? null : v))]),
    ).toThrow('cannot be NULL');
    expect(() =>
      read([GRANT_ROW, recordRow('1').map((v, i) => (PAGE_COLUMN_NAMES[i] === 'ciphertext' ? null : v))]),
    ).toThrow('cannot be NULL');
  });

  it('refuses a bytea column as text (read without the binary format) and text columns as bytes', () => {
    const asText = (r: RowField[], name: string): RowField[] =>
      r.map((v, i) => (PAGE_COLUMN_NAMES[i] === name && Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v));
    expect(() => read([GRANT_ROW, asText(recordRow('1'), 'ciphertext')])).toThrow('which it reads in binary');
    expect(() => read([asText(GRANT_ROW, 'seal')])).toThrow('which it reads in binary');
    const asBytes = (r: RowField[], name: string): RowField[] =>
      r.map((v, i) => (PAGE_COLUMN_NAMES[i] === name && typeof v === 'string' ? Buffer.from(v) : v));
    expect(() => read([GRANT_ROW, asBytes(recordRow('1'), 'version')])).toThrow('which it reads as text');
    expect(() => read([asBytes(GRANT_ROW, 'types')])).toThrow('which it reads as text');
  });
});
