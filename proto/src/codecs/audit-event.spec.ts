import { create, type DescMessage, fromBinary, type MessageInitShape, ScalarType, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { FeatureSet_FieldPresence, timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import {
  ActorKind,
  AuditAction,
  AuditEventBatchSchema,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  PolicyEvaluationSchema,
} from '../gen/contextgateway/audit/v1/audit_pb.js';
import { decodeAuditEvent, decodeAuditEventBatch } from './audit-event.js';
import {
  boundaries,
  codeUnit,
  expectAsStrictAndEqual,
  mutate,
  mutation,
  nestedGroups,
  unknownBytes,
  unknownField,
  withUnknown,
} from './testing/wire-properties.js';
import { StricterThanFromBinaryError } from './wire-read.js';

type EventInit = MessageInitShape<typeof AuditEventSchema>;

const eventBytes = (init: EventInit): Uint8Array => toBinary(AuditEventSchema, create(AuditEventSchema, init));
const batchBytes = (batchId: string, events: EventInit[]): Uint8Array =>
  toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { batchId, events }));
const referenceEvent = (bytes: Uint8Array) => fromBinary(AuditEventSchema, bytes);
const referenceBatch = (bytes: Uint8Array) => fromBinary(AuditEventBatchSchema, bytes);

/** A message field framed by hand (tag, length, body): toBinary would not write unknown fields inside it. */
const framed = (fieldNo: number, body: Uint8Array): Uint8Array => {
  const writer = new BinaryWriter();
  writer.tag(fieldNo, WireType.LengthDelimited).bytes(body);
  return writer.finish();
};
/** `bytes` with `unknown` at one of its field boundaries, picked by `where`. */
const unknownAt = (bytes: Uint8Array, unknown: Parameters<typeof unknownBytes>[0], where: number): Uint8Array => {
  const spots = boundaries(bytes);
  return withUnknown(bytes, unknownBytes(unknown), spots[where % spots.length]!);
};

const ids = ['5b0c7a4e-8f8a-4d6e-9a57-3f2d8a1e4c10', '0d1e2f30-4152-4637-8899-aabbccddeeff'] as const;

/** The gateway's records-query event, every kind of field set. */
const gatewayEvent: EventInit = {
  eventId: ids[0],
  occurredAt: timestampFromDate(new Date('2026-12-07T19:41:02.123Z')),
  orgId: ids[1],
  applicationId: ids[0],
  userId: 'user-42',
  integration: 'github',
  capability: 'github:read:repos',
  resource: `connection:${ids[1]}`,
  action: AuditAction.DATA_QUERY,
  outcome: AuditOutcome.ALLOWED,
  phase: AuditPhase.COMPLETE,
  policy: { decidedBy: 'user', reason: 'granted scope github:read:repos', matchedRuleIds: ['rule-1', 'rule-2'] },
  errorCode: 'none',
  requestId: ids[1],
  traceId: '0af7651916cd43dd8448eb211c80319c',
  latencyMs: 4,
  actorKind: ActorKind.API_KEY,
  actorId: ids[0],
  connectionId: ids[1],
  intentEventId: ids[0],
  operation: 'POST /v1/query',
  approvalId: 'approval-1',
  mcpVirtualServer: 'mcp-1',
};

const text = fc.oneof(
  fc.constant(''),
  fc.constantFrom(...ids),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.constantFrom(127, 128).map((n) => 'c'.repeat(n)),
);
/** Any int32, known to its enum or not (proto3 enums are open). */
const enumValue = fc.oneof(fc.nat({ max: 12 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const timestamp = fc.record({
  seconds: fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1_796_617_737n)),
  nanos: fc.oneof(fc.constant(0), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
});
const eventInit: fc.Arbitrary<EventInit> = fc.record(
  {
    eventId: text,
    occurredAt: timestamp,
    orgId: text,
    applicationId: text,
    userId: text,
    integration: text,
    capability: text,
    resource: text,
    action: enumValue,
    outcome: enumValue,
    phase: enumValue,
    policy: fc.record(
      { decidedBy: text, reason: text, matchedRuleIds: fc.array(text, { maxLength: 3 }) },
      { requiredKeys: [] },
    ),
    errorCode: text,
    requestId: text,
    traceId: text,
    latencyMs: fc.oneof(fc.nat({ max: 600 }), fc.constantFrom(0, 127, 128, 2 ** 32 - 1)),
    actorKind: enumValue,
    actorId: text,
    connectionId: text,
    intentEventId: text,
    operation: text,
    approvalId: text,
    mcpVirtualServer: text,
  },
  { requiredKeys: [] },
);

describe('AuditEvent and AuditEventBatch decoded by hand', () => {
  it('covers every field of AuditEvent, PolicyEvaluation and AuditEventBatch (a new proto field must be decoded here too)', () => {
    // Open enums and length-prefixed messages too: a move to closed enums or delimited
    // encoding changes what fromBinary does with the same bytes.
    const shape = (schema: DescMessage) =>
      schema.fields.map((f) =>
        [
          f.number,
          f.localName,
          f.fieldKind,
          f.scalar === undefined ? (f.message ?? f.enum)?.typeName : ScalarType[f.scalar],
          FeatureSet_FieldPresence[f.presence],
          f.utf8Validation,
          f.enum && (f.enum.open ? 'open' : 'closed'),
          f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')
            ? f.delimitedEncoding
              ? 'delimited'
              : 'length-prefixed'
            : undefined,
        ]
          .filter((part) => part !== undefined)
          .join(' '),
      );
    const strings = (...fields: string[]) => fields.map((f) => `${f} scalar STRING IMPLICIT true`);
    expect(shape(AuditEventSchema)).toEqual([
      ...strings('1 eventId'),
      '2 occurredAt message google.protobuf.Timestamp EXPLICIT true length-prefixed',
      ...strings('3 orgId', '4 applicationId', '5 userId', '6 integration', '7 capability', '8 resource'),
      '9 action enum contextgateway.audit.v1.AuditAction IMPLICIT true open',
      '10 outcome enum contextgateway.audit.v1.AuditOutcome IMPLICIT true open',
      '11 phase enum contextgateway.audit.v1.AuditPhase IMPLICIT true open',
      '12 policy message contextgateway.audit.v1.PolicyEvaluation EXPLICIT true length-prefixed',
      ...strings('13 errorCode', '14 requestId', '15 traceId'),
      '16 latencyMs scalar UINT32 IMPLICIT true',
      '17 actorKind enum contextgateway.audit.v1.ActorKind IMPLICIT true open',
      ...strings('18 actorId', '19 connectionId', '20 intentEventId', '21 operation', '22 approvalId'),
      ...strings('23 mcpVirtualServer'),
    ]);
    expect(shape(PolicyEvaluationSchema)).toEqual([
      ...strings('1 decidedBy', '2 reason'),
      '3 matchedRuleIds list STRING IMPLICIT true',
    ]);
    expect(shape(AuditEventBatchSchema)).toEqual([
      ...strings('1 batchId'),
      '2 events list contextgateway.audit.v1.AuditEvent IMPLICIT true length-prefixed',
    ]);
  });

  it('decodes the gateway’s event and batch as fromBinary does', () => {
    const event = eventBytes(gatewayEvent);
    expect(decodeAuditEvent(event)).toEqual(referenceEvent(event));
    const batch = batchBytes(ids[1], [gatewayEvent, { ...gatewayEvent, eventId: ids[1], policy: undefined }]);
    expect(decodeAuditEventBatch(batch)).toEqual(referenceBatch(batch));
    expect(decodeAuditEventBatch(batch).events.map((e) => e.policy?.matchedRuleIds)).toEqual([
      ['rule-1', 'rule-2'],
      undefined,
    ]);
  });

  it('decodes any event as fromBinary does, unknown fields anywhere (its timestamp and policy too) kept the same way', () => {
    fc.assert(
      fc.property(
        eventInit,
        fc.array(unknownField(24), { maxLength: 3 }),
        fc.array(unknownField(3), { maxLength: 2 }),
        fc.array(unknownField(4), { maxLength: 2 }),
        fc.tuple(fc.nat(), fc.nat(), fc.nat()),
        (init, unknown, inTimestamp, inPolicy, [where, whereInTimestamp, whereInPolicy]) => {
          // The timestamp and the policy framed by hand after the other fields, unknown fields inside them.
          const { occurredAt, policy, ...rest } = init;
          const parts = [eventBytes(rest)];
          if (occurredAt) {
            const body = toBinary(TimestampSchema, create(TimestampSchema, occurredAt));
            parts.push(framed(2, unknownAt(body, inTimestamp, whereInTimestamp)));
          }
          if (policy) {
            const body = toBinary(PolicyEvaluationSchema, create(PolicyEvaluationSchema, policy));
            parts.push(framed(12, unknownAt(body, inPolicy, whereInPolicy)));
          }
          const sent = unknownAt(Buffer.concat(parts), unknown, where);
          expect(decodeAuditEvent(sent)).toEqual(referenceEvent(sent));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('decodes any batch as fromBinary does, unknown fields in the batch and in its events', () => {
    fc.assert(
      fc.property(
        text,
        fc.array(fc.tuple(eventInit, fc.array(unknownField(24), { maxLength: 2 })), { maxLength: 4 }),
        fc.array(unknownField(3), { maxLength: 2 }),
        (batchId, parts, unknown) => {
          const writer = new BinaryWriter();
          writer.raw(batchBytes(batchId, []));
          // Each event as field 2 by hand: toBinary would not write the event's unknown fields where these go.
          for (const [init, inEvent] of parts)
            writer.raw(framed(2, Buffer.concat([eventBytes(init), unknownBytes(inEvent)])));
          const bytes = Buffer.concat([writer.finish(), unknownBytes(unknown)]);
          expect(decodeAuditEventBatch(bytes)).toEqual(referenceBatch(bytes));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('merges a message field sent twice and keeps the last scalar, as fromBinary does', () => {
    const twice = Buffer.concat([
      eventBytes(gatewayEvent),
      eventBytes({ orgId: ids[0], occurredAt: { nanos: 5 }, policy: { reason: 'again', matchedRuleIds: ['rule-3'] } }),
    ]);
    const decoded = decodeAuditEvent(twice);
    expect(decoded).toEqual(referenceEvent(twice));
    expect([decoded.orgId, decoded.occurredAt?.seconds, decoded.occurredAt?.nanos, decoded.policy]).toMatchObject([
      ids[0],
      gatewayEvent.occurredAt?.seconds,
      5,
      { decidedBy: 'user', reason: 'again', matchedRuleIds: ['rule-1', 'rule-2', 'rule-3'] },
    ]);
  });

  it('never accepts corrupt bytes fromBinary refuses, and agrees where both accept', () => {
    fc.assert(
      fc.property(eventInit, fc.array(mutation, { minLength: 1, maxLength: 3 }), (init, mutations) => {
        let bytes = eventBytes(init);
        for (const [kind, position, value] of mutations) bytes = mutate(bytes, kind, position, value);
        expectAsStrictAndEqual(decodeAuditEvent, referenceEvent, bytes);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.array(eventInit, { minLength: 1, maxLength: 3 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (events, mutations) => {
          let bytes = batchBytes(ids[0], events);
          for (const [kind, position, value] of mutations) bytes = mutate(bytes, kind, position, value);
          expectAsStrictAndEqual(decodeAuditEventBatch, referenceBatch, bytes);
        },
      ),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expectAsStrictAndEqual(decodeAuditEvent, referenceEvent, bytes);
        expectAsStrictAndEqual(decodeAuditEventBatch, referenceBatch, bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['truncated in a string', eventBytes(gatewayEvent).subarray(0, 20)],
    ['a length past the end', Uint8Array.from([0x0a, 0x05, 0x61])],
    ['a varint without its end', Uint8Array.from([0x48, 0xff, 0xff])],
    ['invalid UTF-8 in a string', Uint8Array.from([0x0a, 0x02, 0xc3, 0x28])],
    ['an occurred_at longer than the event', Uint8Array.from([0x12, 0x05, 0x08, 0x01])],
    ['an end-group with no group', Uint8Array.from([0xbc, 0x01])],
  ])('refuses %s, as fromBinary does', (_, bytes) => {
    expect(() => referenceEvent(bytes)).toThrow();
    expect(() => decodeAuditEvent(bytes)).toThrow();
  });

  // The message itself is one level of fromBinary's 100: 99 nested groups fit, 100 do not.
  it.each([
    [99, 'accepts'],
    [100, 'refuses'],
  ])('%i nested unknown groups: %s them as fromBinary does', (depth, verdict) => {
    const bytes = Buffer.concat([eventBytes({ eventId: ids[0] }), nestedGroups(depth)]);
    if (verdict === 'refuses') {
      expect(() => referenceEvent(bytes)).toThrow(/recursion/);
      expect(() => decodeAuditEvent(bytes)).toThrow(/recursion/);
    } else expect(decodeAuditEvent(bytes)).toEqual(referenceEvent(bytes));
  });

  it.each([
    ['event_id as a varint', [0x08, 0x05]],
    ['action as a string', [0x4a, 0x01, 0x05]],
    ['latency_ms as fixed32', [0x85, 0x01, 1, 2, 3, 4]],
    ['occurred_at as a varint', [0x10, 0x01]],
    ['policy as fixed64', [0x61, 1, 2, 3, 4, 5, 6, 7, 8]],
    ['a rule id as a varint, inside policy', [0x62, 0x02, 0x18, 0x01]],
  ])('refuses a known field with the wrong wire type (fromBinary misreads it): %s', (_, wire) => {
    expect(() => decodeAuditEvent(Uint8Array.from(wire))).toThrow(StricterThanFromBinaryError);
    expect(() => decodeAuditEvent(Uint8Array.from(wire))).toThrow(/wire type/);
  });

  it.each([
    // occurred_at: length 2, holding seconds' tag and the first byte of its 2-byte varint.
    ['an occurred_at', [0x12, 0x02, 0x08, 0x96, 0x01]],
    // policy: length 2, holding decided_by's tag and length, not its 2 bytes of text.
    ['a policy', [0x62, 0x02, 0x0a, 0x02, 0x61, 0x62]],
  ])('refuses %s whose last field runs past its length (fromBinary reads on)', (_, wire) => {
    const bytes = Uint8Array.from(wire);
    expect(() => referenceEvent(bytes)).not.toThrow();
    expect(() => decodeAuditEvent(bytes)).toThrow(StricterThanFromBinaryError);
    expect(() => decodeAuditEvent(bytes)).toThrow(/past the end/);
  });

  it('refuses a batch’s event whose fields run past its length (fromBinary reads on)', () => {
    // events: length 2, holding the first two bytes of a 4-byte event_id field.
    const bytes = Uint8Array.from([0x12, 0x02, 0x0a, 0x02, 0x61, 0x62]);
    expect(() => decodeAuditEventBatch(bytes)).toThrow(/past the end/);
  });
});
