import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { QueryRecordsResponseSchema } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';

import { encodeQueryReply } from './query-reply.js';
import type { QueryPage } from './records.service.js';

/** What the handler sent before: the generic encoder over the same page. */
function generic(page: QueryPage): Uint8Array {
  return toBinary(
    QueryRecordsResponseSchema,
    create(QueryRecordsResponseSchema, {
      recordsJson: page.recordsJson,
      nextCursor: page.nextCursor,
      syncedAt: page.syncedAt ? timestampFromDate(page.syncedAt) : undefined,
    }),
  );
}

const pages: [string, QueryPage][] = [
  ['an empty page, no cursor, never synced', { recordsJson: Buffer.alloc(0), nextCursor: '', syncedAt: null }],
  ['an empty array', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: null }],
  [
    'a page with a cursor and a sync time',
    {
      recordsJson: Buffer.from('[{"id":"a"}]'),
      nextCursor: 'djE6MTIz',
      syncedAt: new Date('2026-12-07T04:55:01.234Z'),
    },
  ],
  [
    'a sync time on a whole second',
    { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date(1_796_617_737_000) },
  ],
  ['the epoch itself', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date(0) }],
  ['before 1970', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date('1969-07-20T20:17:40.5Z') }],
  ['a cursor beyond ASCII', { recordsJson: Buffer.from('[]'), nextCursor: 'é✓🙂', syncedAt: null }],
  // Lengths of 1, 2 and 3 varint bytes.
  ['a page of 127 bytes', { recordsJson: Buffer.alloc(127, 0x61), nextCursor: 'c', syncedAt: null }],
  ['a page of 128 bytes', { recordsJson: Buffer.alloc(128, 0x61), nextCursor: '', syncedAt: new Date(1) }],
  ['a page of 20 KB', { recordsJson: Buffer.alloc(20_000, 0x61), nextCursor: 'c'.repeat(200), syncedAt: new Date() }],
];

describe('encodeQueryReply', () => {
  it.each(pages)('writes exactly what toBinary writes: %s', (_, page) => {
    const reply = encodeQueryReply(page);
    expect(Buffer.from(reply.bytes).equals(Buffer.from(generic(page)))).toBe(true);
    expect(reply.schema).toBe(QueryRecordsResponseSchema);
  });

  it('decodes back to the page the gateway reads', () => {
    const syncedAt = new Date('2026-12-07T04:55:01.234Z');
    const decoded = fromBinary(
      QueryRecordsResponseSchema,
      encodeQueryReply({ recordsJson: Buffer.from('[{"id":"a"}]'), nextCursor: 'next', syncedAt }).bytes,
    );
    expect(Buffer.from(decoded.recordsJson).toString()).toBe('[{"id":"a"}]');
    expect(decoded.nextCursor).toBe('next');
    expect(decoded.syncedAt).toEqual(timestampFromDate(syncedAt));
  });
});
