import { create, fromBinary, ScalarType, toBinary } from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { QueryRecordsResponseSchema } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { writeParts } from './page-bytes.js';
import { encodeQueryReply, QUERY_REPLY_ROOM } from './query-reply.js';
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

/**
 * Bytes as hex, 32 to a line, for `toEqual`: a mismatch shows as the few lines that differ.
 * (`toEqual` on the Buffers themselves walks them index by index under Jest, ~300 ms for one
 * 70 KB page, and prints every byte.)
 */
const hexLines = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex').replace(/.{64}/g, '$&\n');

const synced = new Date('2026-12-07T04:55:01.234Z');
const pages: [string, QueryPage][] = [
  ['an empty page, no cursor, never synced', { recordsJson: Buffer.alloc(0), nextCursor: '', syncedAt: null }],
  ['an empty array', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: null }],
  [
    'a page with a cursor and a sync time',
    { recordsJson: Buffer.from('[{"id":"a"}]'), nextCursor: 'djE6MTIz', syncedAt: synced },
  ],
  [
    'a sync time on a whole second',
    { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date(1_796_617_737_000) },
  ],
  ['the epoch itself', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date(0) }],
  ['before 1970', { recordsJson: Buffer.from('[]'), nextCursor: '', syncedAt: new Date('1969-07-20T20:17:40.5Z') }],
  ['a cursor beyond ASCII', { recordsJson: Buffer.from('[]'), nextCursor: 'é✓🙂', syncedAt: null }],
  ['a cursor with lone surrogates', { recordsJson: Buffer.from('[]'), nextCursor: '\udfffa\ud800', syncedAt: null }],
  // Lengths of 1, 2 and 3 varint bytes.
  ['a page of 127 bytes', { recordsJson: Buffer.alloc(127, 0x61), nextCursor: 'c', syncedAt: null }],
  ['a page of 128 bytes', { recordsJson: Buffer.alloc(128, 0x61), nextCursor: '', syncedAt: new Date(1) }],
  ['a page of 20 KB', { recordsJson: Buffer.alloc(20_000, 0x61), nextCursor: 'c'.repeat(200), syncedAt: synced }],
  // A 4-byte length: past any page the shard sends, but the encoder must not care.
  ['a page of 2097151 bytes', { recordsJson: Buffer.alloc(2_097_151, 0x62), nextCursor: 'c', syncedAt: synced }],
  ['a page of 2097152 bytes', { recordsJson: Buffer.alloc(2_097_152, 0x62), nextCursor: 'c', syncedAt: synced }],
];

/** Where a varint gains a byte (2^7k), one either side: the encoder's length arithmetic. */
const varintEdges = [127, 128, 16_383, 16_384];

/**
 * A page of any length up to ~70 KB (past the largest real page), from a random pattern
 * repeated: generating 70,000 bytes one by one would make each run slow for no gain, the
 * encoder copies the page without looking at it.
 */
const page = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  fc
    .tuple(
      fc.oneof(fc.constantFrom(...varintEdges), fc.integer({ min: 0, max: 70_000 })),
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
    )
    .map(([length, pattern]) => Buffer.alloc(length, pattern)),
);

/** Any UTF-16 code unit, lone surrogates included (UTF-8 writes each as U+FFFD, as toBinary does). */
const codeUnit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
);
const cursor = fc.oneof(
  fc.constant(''),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  // Byte lengths at the varint edges, with a multi-byte or broken character at the end.
  fc
    .tuple(fc.constantFrom(...varintEdges), fc.string({ unit: codeUnit, maxLength: 2 }))
    .map(([length, tail]) => 'c'.repeat(length) + tail),
);

/** Whole seconds where the Timestamp's int64 varint gains a byte (2^7k), as dates. */
const secondsEdges = [1, 2, 3, 4, 5, 6].flatMap((k) => [2 ** (7 * k) - 1, 2 ** (7 * k)]);
const MAX_DATE_MS = 8.64e15; // ±100,000,000 days: the range a JavaScript Date holds
const syncedAt = fc.oneof(
  fc.constant(null),
  fc.date({ min: new Date(-MAX_DATE_MS), max: new Date(MAX_DATE_MS), noInvalidDate: true }),
  fc.constantFrom(0, 1, -1, 999, 1_000, -999, -1_000, -1_001, MAX_DATE_MS, -MAX_DATE_MS).map((ms) => new Date(ms)),
  fc
    .tuple(fc.constantFrom(...secondsEdges), fc.constantFrom(1, -1), fc.integer({ min: 0, max: 999 }))
    .map(([seconds, sign, ms]) => new Date(sign * seconds * 1_000 + ms)),
);

describe('encodeQueryReply', () => {
  it('covers every field of QueryRecordsResponse (a new proto field must be encoded here too)', () => {
    expect(
      QueryRecordsResponseSchema.fields.map((field) => ({
        number: field.number,
        name: field.name,
        kind: field.fieldKind,
        scalar: field.scalar === undefined ? undefined : ScalarType[field.scalar],
        message: field.message?.typeName,
        // Implicit presence: an empty page or cursor is left out, as the encoder does.
        presence: FeatureSet_FieldPresence[field.presence],
      })),
    ).toEqual([
      { number: 1, name: 'records_json', kind: 'scalar', scalar: 'BYTES', message: undefined, presence: 'IMPLICIT' },
      { number: 2, name: 'next_cursor', kind: 'scalar', scalar: 'STRING', message: undefined, presence: 'IMPLICIT' },
      {
        number: 3,
        name: 'synced_at',
        kind: 'message',
        scalar: undefined,
        message: 'google.protobuf.Timestamp',
        presence: 'EXPLICIT',
      },
    ]);
  });

  it.each(pages)('writes exactly what toBinary writes: %s', (_, page) => {
    const reply = encodeQueryReply(page);
    expect(hexLines(reply.bytes)).toEqual(hexLines(generic(page)));
    expect(reply.schema).toBe(QueryRecordsResponseSchema);
  });

  it('writes exactly what toBinary writes for any page, cursor and sync time', () => {
    fc.assert(
      fc.property(fc.record({ recordsJson: page, nextCursor: cursor, syncedAt }), (generated) => {
        expect(hexLines(encodeQueryReply(generated).bytes)).toEqual(hexLines(generic(generated)));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes back to the page the gateway reads', () => {
    const decoded = fromBinary(
      QueryRecordsResponseSchema,
      encodeQueryReply({ recordsJson: Buffer.from('[{"id":"a"}]'), nextCursor: 'next', syncedAt: synced }).bytes,
    );
    expect(Buffer.from(decoded.recordsJson).toString()).toBe('[{"id":"a"}]');
    expect(decoded.nextCursor).toBe('next');
    expect(decoded.syncedAt).toEqual(timestampFromDate(synced));
  });

  describe('around a page made with room (the query path)', () => {
    /** The page as render makes it: written by writeParts with the query reply's room. */
    const framed = (bytes: Buffer): Buffer => writeParts([bytes], bytes.length, QUERY_REPLY_ROOM);

    it('writes exactly what toBinary writes for any page, cursor and sync time', () => {
      fc.assert(
        fc.property(fc.record({ recordsJson: page, nextCursor: cursor, syncedAt }), (generated) => {
          const inRoom = { ...generated, recordsJson: framed(generated.recordsJson) };
          expect(hexLines(encodeQueryReply(inRoom).bytes)).toEqual(hexLines(generic(generated)));
          // The page itself is left as it was.
          expect(inRoom.recordsJson.equals(generated.recordsJson)).toBe(true);
        }),
        { numRuns: 300 },
      );
    });

    it.each(pages)('writes exactly what toBinary writes: %s', (_, page) => {
      const reply = encodeQueryReply({ ...page, recordsJson: framed(page.recordsJson) });
      expect(hexLines(reply.bytes)).toEqual(hexLines(generic(page)));
    });

    it.each([
      [2_097_151, 4],
      [2_097_152, 5],
    ])('writes a %i-byte page in place behind its %i-byte tag and length', (length, head) => {
      const recordsJson = framed(Buffer.alloc(length, 0x62));
      const reply = encodeQueryReply({ recordsJson, nextCursor: 'c', syncedAt: synced });
      expect(reply.bytes.buffer).toBe(recordsJson.buffer);
      expect(reply.bytes.byteOffset).toBe(recordsJson.byteOffset - head);
    });

    it('copies the page when its tag and length do not fit the room before it', () => {
      const recordsJson = writeParts([Buffer.from('[]')], 2, { before: 1, after: 96 });
      const reply = encodeQueryReply({ recordsJson, nextCursor: 'djE6MTIz', syncedAt: synced });
      expect(reply.bytes.buffer).not.toBe(recordsJson.buffer);
      expect(hexLines(reply.bytes)).toEqual(
        hexLines(generic({ recordsJson: Buffer.from('[]'), nextCursor: 'djE6MTIz', syncedAt: synced })),
      );
    });

    it("does not copy the page: the reply is the page's own buffer, around it", () => {
      const recordsJson = framed(Buffer.alloc(8_000, 0x61));
      const reply = encodeQueryReply({ recordsJson, nextCursor: 'djE6MTIz', syncedAt: synced });
      expect(reply.bytes.buffer).toBe(recordsJson.buffer);
      expect(reply.bytes.byteOffset).toBe(recordsJson.byteOffset - 3);
      expect(hexLines(reply.bytes)).toEqual(
        hexLines(generic({ recordsJson: Buffer.alloc(8_000, 0x61), nextCursor: 'djE6MTIz', syncedAt: synced })),
      );
    });

    it('takes the room once: a second reply of the same page is a copy, and the first is left intact', () => {
      const recordsJson = framed(Buffer.from('[{"id":"a"}]'));
      const first = encodeQueryReply({ recordsJson, nextCursor: 'one', syncedAt: synced });
      const firstBytes = Buffer.from(first.bytes);
      const second = encodeQueryReply({ recordsJson, nextCursor: 'another', syncedAt: null });
      expect(second.bytes.buffer).not.toBe(recordsJson.buffer);
      expect(Buffer.from(first.bytes).equals(firstBytes)).toBe(true);
      expect(hexLines(second.bytes)).toEqual(
        hexLines(generic({ recordsJson: Buffer.from('[{"id":"a"}]'), nextCursor: 'another', syncedAt: null })),
      );
    });

    it('copies the page when the reply does not fit the room (a cursor longer than it)', () => {
      const recordsJson = framed(Buffer.from('[]'));
      const nextCursor = 'c'.repeat(QUERY_REPLY_ROOM.after);
      const reply = encodeQueryReply({ recordsJson, nextCursor, syncedAt: synced });
      expect(reply.bytes.buffer).not.toBe(recordsJson.buffer);
      expect(hexLines(reply.bytes)).toEqual(
        hexLines(generic({ recordsJson: Buffer.from('[]'), nextCursor, syncedAt: synced })),
      );
    });
  });
});
