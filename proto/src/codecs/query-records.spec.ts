import { create, fromBinary, type MessageInitShape, ScalarType, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { FeatureSet_FieldPresence, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { rpc } from '../catalog/rpc.js';
import {
  QueryRecordsRequestSchema,
  QueryRecordsResponseSchema,
} from '../gen/contextgateway/personalserver/v1/personal_server_pb.js';
import { decodeQueryRecordsRequest, decodeQueryRecordsResponse, encodeQueryRecordsRequest } from './query-records.js';
import {
  boundaries,
  codeUnit,
  expectAsStrictAndEqual,
  hexLines,
  mutate,
  mutation,
  nestedGroups,
  unknownBytes,
  unknownField,
  withUnknown,
} from './testing/wire-properties.js';

type RequestInit = MessageInitShape<typeof QueryRecordsRequestSchema>;

const generic = (init: RequestInit): Uint8Array =>
  toBinary(QueryRecordsRequestSchema, create(QueryRecordsRequestSchema, init));

const ids = ['5b0c7a4e-8f8a-4d6e-9a57-3f2d8a1e4c10', '0d1e2f30-4152-4637-8899-aabbccddeeff'];

/** Strings whose byte length sits on a varint edge (127/128), with a multi-byte tail. */
const text = fc.oneof(
  fc.constant(''),
  fc.constantFrom(...ids),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc
    .tuple(fc.constantFrom(126, 127, 128), fc.string({ unit: codeUnit, maxLength: 2 }))
    .map(([n, t]) => 'c'.repeat(n) + t),
);
const int64 = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.constantFrom(1n, -1n, 127n, 128n, 1_796_617_737_000n, 2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n)),
  fc.date({ noInvalidDate: true }).map((d) => BigInt(d.getTime())),
);
const uint32 = fc.oneof(fc.nat({ max: 600 }), fc.constantFrom(0, 127, 128, 2 ** 31, 2 ** 32 - 1), fc.nat());

/** Request initialisers as callers write them: any field may be missing. */
const requestInit: fc.Arbitrary<RequestInit> = fc.record(
  {
    orgId: text,
    applicationId: text,
    connectionId: text,
    type: text,
    sinceMs: int64,
    limit: uint32,
    cursor: text,
    fields: fc.array(text, { maxLength: 5 }),
    policyTypes: fc.array(text, { maxLength: 5 }),
  },
  { requiredKeys: [] },
);

describe('QueryRecordsRequest by hand', () => {
  it('covers every field of QueryRecordsRequest (a new proto field must be coded here too)', () => {
    expect(
      QueryRecordsRequestSchema.fields.map((field) => ({
        number: field.number,
        name: field.name,
        kind: field.fieldKind,
        scalar: field.scalar === undefined ? undefined : ScalarType[field.scalar],
        // Implicit presence: a default is left out, as the encoder does.
        presence: FeatureSet_FieldPresence[field.presence],
        // Strings refused when not UTF-8, as the decoder does.
        utf8: field.utf8Validation,
      })),
    ).toEqual([
      { number: 1, name: 'org_id', kind: 'scalar', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 2, name: 'application_id', kind: 'scalar', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 3, name: 'connection_id', kind: 'scalar', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 4, name: 'type', kind: 'scalar', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 5, name: 'since_ms', kind: 'scalar', scalar: 'INT64', presence: 'IMPLICIT', utf8: true },
      { number: 6, name: 'limit', kind: 'scalar', scalar: 'UINT32', presence: 'IMPLICIT', utf8: true },
      { number: 7, name: 'cursor', kind: 'scalar', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 8, name: 'fields', kind: 'list', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
      { number: 9, name: 'policy_types', kind: 'list', scalar: 'STRING', presence: 'IMPLICIT', utf8: true },
    ]);
    // since_ms as a bigint (not `jstype = JS_STRING`), as the decoder returns it.
    const since = QueryRecordsRequestSchema.fields.find((f) => f.number === 5);
    expect(since?.fieldKind === 'scalar' && since.longAsString).toBe(false);
  });

  it('is the codec of ps.v1.shard.<n>.query', () => {
    const d = rpc.personalServer.shardQuery;
    expect([d.encodeRequest, d.decodeRequest, d.decodeResponse]).toEqual([
      encodeQueryRecordsRequest,
      decodeQueryRecordsRequest,
      decodeQueryRecordsResponse,
    ]);
  });

  const gatewayQuery: RequestInit = {
    orgId: ids[0],
    applicationId: ids[1],
    connectionId: ids[0],
    type: 'github.repo',
    sinceMs: 1_796_617_737_123n,
    limit: 100,
    cursor: 'djE6MTIz',
    fields: ['name', 'stars'],
    policyTypes: ['github.repo', 'github.issue'],
  };
  const examples: [string, RequestInit][] = [
    ['the gateway’s query', gatewayQuery],
    ['nothing set', {}],
    ['defaults written out', { orgId: '', sinceMs: 0n, limit: 0, fields: [], policyTypes: [] }],
    ['empty strings in lists (written: lists keep every element)', { fields: ['', 'a'], policyTypes: [''] }],
    ['a negative since (ten bytes)', { sinceMs: -1n }],
    ['int64 extremes', { sinceMs: 2n ** 63n - 1n }],
    ['int64 minimum', { sinceMs: -(2n ** 63n) }],
    ['the largest uint32', { limit: 2 ** 32 - 1 }],
    ['text beyond ASCII', { type: 'é✓🙂', cursor: '\udfffa\ud800', fields: ['\ud83d'] }],
    ['a 128-byte cursor', { cursor: 'c'.repeat(128) }],
  ];

  it.each(examples)('encodes exactly what toBinary writes: %s', (_, init) => {
    expect(hexLines(encodeQueryRecordsRequest(init))).toEqual(hexLines(generic(init)));
  });

  it('encodes exactly what toBinary writes for any request', () => {
    fc.assert(
      fc.property(requestInit, (init) => {
        expect(hexLines(encodeQueryRecordsRequest(init))).toEqual(hexLines(generic(init)));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses what toBinary refuses, and writes back unknown fields of a decoded message', () => {
    for (const bad of [{ limit: -1 }, { limit: 1.5 }, { limit: 2 ** 32 }, { sinceMs: 2n ** 63n }]) {
      expect(() => generic(bad)).toThrow();
      expect(() => encodeQueryRecordsRequest(bad)).toThrow();
    }
    const decoded = fromBinary(
      QueryRecordsRequestSchema,
      withUnknown(generic(gatewayQuery), unknownBytes([[40, WireType.Varint, 7n]]), 0),
    );
    expect(decoded.$unknown).toHaveLength(1);
    expect(hexLines(encodeQueryRecordsRequest(decoded))).toEqual(
      hexLines(toBinary(QueryRecordsRequestSchema, decoded)),
    );
  });

  it('decodes what fromBinary decodes, unknown fields anywhere kept the same way', () => {
    fc.assert(
      fc.property(requestInit, fc.array(unknownField(10), { maxLength: 3 }), fc.nat(), (init, unknown, where) => {
        const bytes = generic(init);
        const spots = boundaries(bytes);
        const sent = withUnknown(bytes, unknownBytes(unknown), spots[where % spots.length]!);
        expect(decodeQueryRecordsRequest(sent)).toEqual(fromBinary(QueryRecordsRequestSchema, sent));
      }),
      { numRuns: 500 },
    );
  });

  it('decodes the fields a peer sends twice as fromBinary does (last wins, lists append)', () => {
    const twice = Buffer.concat([generic(gatewayQuery), generic({ orgId: ids[1], limit: 5, fields: ['x'] })]);
    const decoded = decodeQueryRecordsRequest(twice);
    expect(decoded).toEqual(fromBinary(QueryRecordsRequestSchema, twice));
    expect([decoded.orgId, decoded.limit, decoded.fields]).toEqual([ids[1], 5, ['name', 'stars', 'x']]);
  });

  it('never accepts corrupt bytes fromBinary refuses, and agrees where both accept', () => {
    fc.assert(
      fc.property(requestInit, fc.array(mutation, { minLength: 1, maxLength: 3 }), (init, mutations) => {
        let bytes = generic(init);
        for (const [kind, position, value] of mutations) bytes = mutate(bytes, kind, position, value);
        expectAsStrictAndEqual(decodeQueryRecordsRequest, (b) => fromBinary(QueryRecordsRequestSchema, b), bytes);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expectAsStrictAndEqual(decodeQueryRecordsRequest, (b) => fromBinary(QueryRecordsRequestSchema, b), bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['truncated in a string', generic(gatewayQuery).subarray(0, 20)],
    ['a length past the end', Uint8Array.from([0x0a, 0x05, 0x61])],
    ['a varint without its end', Uint8Array.from([0x30, 0xff, 0xff])],
    ['an eleven-byte varint', Uint8Array.from([0x28, ...Array<number>(10).fill(0xff), 0x01])],
    ['field number 0', Uint8Array.from([0x02, 0x00])],
    ['invalid UTF-8 in a string', Uint8Array.from([0x0a, 0x02, 0xc3, 0x28])],
    ['an end-group with no group', Uint8Array.from([0x54])],
    ['a group closed by another field', Uint8Array.from([0x53, 0x5c])],
  ])('refuses %s, as fromBinary does', (_, bytes) => {
    expect(() => fromBinary(QueryRecordsRequestSchema, bytes)).toThrow();
    expect(() => decodeQueryRecordsRequest(bytes)).toThrow();
  });

  // The message itself is one level of fromBinary's 100: 99 nested groups fit, 100 do not.
  it.each([
    [99, 'accepts'],
    [100, 'refuses'],
  ])('%i nested unknown groups: %s them as fromBinary does', (depth, verdict) => {
    const bytes = Buffer.concat([generic({ orgId: ids[0] }), nestedGroups(depth)]);
    const decode = () => decodeQueryRecordsRequest(bytes);
    if (verdict === 'refuses') {
      expect(() => fromBinary(QueryRecordsRequestSchema, bytes)).toThrow(/recursion/);
      expect(decode).toThrow(/recursion/);
    } else expect(decode()).toEqual(fromBinary(QueryRecordsRequestSchema, bytes));
  });

  it.each([
    ['org_id as a varint', [0x08, 0x05]],
    ['limit as a string', [0x32, 0x01, 0x05]],
    ['since_ms as fixed64', [0x29, 1, 2, 3, 4, 5, 6, 7, 8]],
    ['fields as fixed32', [0x45, 0x61, 0x62, 0x63, 0x64]],
  ])('refuses a known field with the wrong wire type (fromBinary misreads it): %s', (_, wire) => {
    expect(() => decodeQueryRecordsRequest(Uint8Array.from(wire))).toThrow(/wire type/);
  });

  it('keeps a leading U+FEFF and the ASCII ids as fromBinary does', () => {
    const bytes = generic({ orgId: '\ufeffx', connectionId: ids[0] });
    expect(decodeQueryRecordsRequest(bytes)).toEqual(fromBinary(QueryRecordsRequestSchema, bytes));
    expect(decodeQueryRecordsRequest(bytes).orgId).toBe('\ufeffx');
  });
});

describe('QueryRecordsResponse by hand', () => {
  const synced = new Date('2026-12-07T04:55:01.234Z');
  const reply = (json: string, nextCursor: string, syncedAt?: Date): Uint8Array =>
    toBinary(
      QueryRecordsResponseSchema,
      create(QueryRecordsResponseSchema, {
        recordsJson: Buffer.from(json),
        nextCursor,
        syncedAt: syncedAt ? timestampFromDate(syncedAt) : undefined,
      }),
    );

  const response = fc.record({
    json: fc.oneof(
      fc.constant(''),
      fc.string({ maxLength: 300 }),
      fc.oneof(fc.nat({ max: 3_000 }), fc.constant(16_384)).map((n) => 'a'.repeat(n)),
    ),
    cursor: text,
    synced: fc.option(
      fc.oneof(
        fc.date({ noInvalidDate: true }),
        fc.constantFrom(new Date(0), new Date(-1), new Date(1), new Date(-1_001), synced),
      ),
      { nil: undefined },
    ),
  });

  it('covers every field of QueryRecordsResponse', () => {
    expect(
      QueryRecordsResponseSchema.fields.map((f) => [
        f.number,
        f.name,
        f.fieldKind,
        f.message?.typeName,
        f.utf8Validation,
      ]),
    ).toEqual([
      [1, 'records_json', 'scalar', undefined, true],
      [2, 'next_cursor', 'scalar', undefined, true],
      [3, 'synced_at', 'message', 'google.protobuf.Timestamp', true],
    ]);
  });

  it('decodes what fromBinary decodes, the page a view into the reply (no copy)', () => {
    const bytes = reply('[{"id":"a"}]', 'next', synced);
    const decoded = decodeQueryRecordsResponse(bytes);
    expect(decoded).toEqual(fromBinary(QueryRecordsResponseSchema, bytes));
    expect(decoded.recordsJson.buffer).toBe(bytes.buffer);
    expect(Buffer.from(decoded.recordsJson).toString()).toBe('[{"id":"a"}]');
    expect(decoded.syncedAt).toEqual(timestampFromDate(synced));
  });

  it('leaves syncedAt unset when none was sent, as fromBinary does', () => {
    const decoded = decodeQueryRecordsResponse(reply('[]', ''));
    expect('syncedAt' in decoded).toBe(false);
    expect(decoded).toEqual(fromBinary(QueryRecordsResponseSchema, reply('[]', '')));
  });

  it('decodes any reply as fromBinary does, unknown fields (in the sync time too) kept the same way', () => {
    fc.assert(
      fc.property(
        response,
        fc.array(unknownField(4), { maxLength: 3 }),
        fc.array(unknownField(3), { maxLength: 2 }),
        fc.nat(),
        ({ json, cursor, synced: at }, unknown, inTimestamp, where) => {
          let bytes = reply(json, cursor, at);
          if (at !== undefined && inTimestamp.length > 0) {
            // The sync time's body with unknown fields after its own: re-framed with its new length.
            const ts = toBinary(
              QueryRecordsResponseSchema,
              create(QueryRecordsResponseSchema, { syncedAt: timestampFromDate(at) }),
            );
            const body = Buffer.concat([ts.subarray(2), unknownBytes(inTimestamp)]);
            const writer = new BinaryWriter();
            writer.tag(3, WireType.LengthDelimited).bytes(body);
            bytes = Buffer.concat([reply(json, cursor), writer.finish()]);
          }
          const spots = boundaries(bytes);
          const sent = withUnknown(bytes, unknownBytes(unknown), spots[where % spots.length]!);
          expect(decodeQueryRecordsResponse(sent)).toEqual(fromBinary(QueryRecordsResponseSchema, sent));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('merges a sync time sent twice, as fromBinary does', () => {
    const bytes = Buffer.concat([reply('', '', synced), reply('', '', new Date(5_000))]);
    expect(decodeQueryRecordsResponse(bytes)).toEqual(fromBinary(QueryRecordsResponseSchema, bytes));
  });

  it('never accepts corrupt replies fromBinary refuses, and agrees where both accept', () => {
    fc.assert(
      fc.property(
        response,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        ({ json, cursor, synced: at }, mutations) => {
          let bytes = reply(json.slice(0, 40), cursor, at);
          for (const [kind, position, value] of mutations) bytes = mutate(bytes, kind, position, value);
          expectAsStrictAndEqual(decodeQueryRecordsResponse, (b) => fromBinary(QueryRecordsResponseSchema, b), bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['records_json as a varint', [0x08, 0x01]],
    ['synced_at as a varint', [0x18, 0x01]],
    ['seconds as a string', [0x1a, 0x03, 0x0a, 0x01, 0x00]],
    ['nanos as a string', [0x1a, 0x03, 0x12, 0x01, 0x00]],
  ])('refuses a known field with the wrong wire type: %s', (_, wire) => {
    expect(() => decodeQueryRecordsResponse(Uint8Array.from(wire))).toThrow(/wire type/);
  });

  // Inside synced_at two levels are taken (the reply and the Timestamp): 98 nested groups fit, 99 do not.
  it.each([
    [98, 'accepts'],
    [99, 'refuses'],
  ])('%i nested unknown groups in the sync time: %s them as fromBinary does', (depth, verdict) => {
    const body = Buffer.concat([Uint8Array.from([0x08, 0x01]), nestedGroups(depth)]); // seconds = 1, then the groups
    const writer = new BinaryWriter();
    writer.tag(3, WireType.LengthDelimited).bytes(body);
    const bytes = writer.finish();
    const decode = () => decodeQueryRecordsResponse(bytes);
    if (verdict === 'refuses') {
      expect(() => fromBinary(QueryRecordsResponseSchema, bytes)).toThrow(/recursion/);
      expect(decode).toThrow(/recursion/);
    } else expect(decode()).toEqual(fromBinary(QueryRecordsResponseSchema, bytes));
  });

  it('refuses a sync time whose fields run past its length (fromBinary reads on)', () => {
    // synced_at of length 1 holding a two-byte field: seconds = 1.
    const bytes = Uint8Array.from([0x1a, 0x01, 0x08, 0x01]);
    expect(() => decodeQueryRecordsResponse(bytes)).toThrow(/past the end/);
  });
});
