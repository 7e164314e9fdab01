import { randomUUID } from 'node:crypto';

import { create, type DescMessage, fromBinary, type MessageInitShape, ScalarType, toBinary } from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence, timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt';
import {
  ActorKind,
  AuditAction,
  AuditEventBatchSchema,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  PolicyEvaluationSchema,
} from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { encodeAuditBatch, encodeAuditEvent } from './audit-event-bytes.js';

/** Bytes as hex, 32 to a line, for `toEqual`: a mismatch shows as the few lines that differ. */
const hexLines = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex').replace(/.{64}/g, '$&\n');

/** What each field is, so a field added to the proto fails here until the encoder writes it. */
const shape = (schema: DescMessage) =>
  schema.fields.map((field) => [
    field.number,
    field.name,
    field.fieldKind,
    field.scalar === undefined ? (field.message?.typeName ?? field.enum?.typeName) : ScalarType[field.scalar],
    FeatureSet_FieldPresence[field.presence],
  ]);

/** Any UTF-16 code unit, lone surrogates included (UTF-8 writes each as U+FFFD, as toBinary does). */
const codeUnit = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }).map((unit) => String.fromCharCode(unit)),
  fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
);
/**
 * Strings around the encoder's two paths — short enough (under 43 units) that the length
 * takes one byte whatever the string holds, or measured first — and the varint edges of a
 * length (127/128 bytes, 16,383/16,384).
 */
const text = fc.oneof(
  fc.constant(''),
  fc.string({ unit: codeUnit, maxLength: 50 }),
  // Three UTF-8 bytes per unit: where 42 units still fit a one-byte length and 43 may not.
  fc.string({
    unit: fc.integer({ min: 0x800, max: 0xd7ff }).map((u) => String.fromCharCode(u)),
    minLength: 40,
    maxLength: 45,
  }),
  fc
    .tuple(fc.constantFrom(40, 42, 43, 126, 127, 128, 129, 16_383, 16_384), fc.string({ unit: codeUnit, maxLength: 2 }))
    .map(([length, tail]) => 'a'.repeat(length) + tail),
);
const int32 = fc.oneof(fc.constantFrom(0, 1, -1, 127, 128, 2 ** 31 - 1, -(2 ** 31)), fc.integer());
const int64 = fc.oneof(
  fc.constantFrom(0n, 1n, -1n, 127n, 128n, 2n ** 63n - 1n, -(2n ** 63n)),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);

const event = fc.record({
  eventId: text,
  occurredAt: fc.option(fc.record({ seconds: int64, nanos: int32 }), { nil: undefined }),
  orgId: text,
  applicationId: text,
  userId: text,
  integration: text,
  capability: text,
  resource: text,
  action: int32,
  outcome: int32,
  phase: int32,
  policy: fc.option(fc.record({ decidedBy: text, reason: text, matchedRuleIds: fc.array(text, { maxLength: 4 }) }), {
    nil: undefined,
  }),
  errorCode: text,
  requestId: text,
  traceId: text,
  latencyMs: fc.oneof(fc.constantFrom(0, 1, 127, 128, 2 ** 31, 2 ** 32 - 1), fc.nat()),
  actorKind: int32,
  actorId: text,
  connectionId: text,
  intentEventId: text,
  operation: text,
  approvalId: text,
  mcpVirtualServer: text,
});

/** An event as the gateway records one for a records query. */
const queryEvent = (more: MessageInitShape<typeof AuditEventSchema> = {}) =>
  create(AuditEventSchema, {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date('2026-12-07T07:50:01.234Z')),
    orgId: randomUUID(),
    applicationId: randomUUID(),
    userId: randomUUID(),
    integration: 'spotify',
    resource: 'media.playlist',
    connectionId: randomUUID(),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    policy: create(PolicyEvaluationSchema, { decidedBy: 'none', reason: 'no policy restricts this scope' }),
    requestId: randomUUID(),
    traceId: '0af7651916cd43dd8448eb211c80319c',
    latencyMs: 3,
    actorKind: ActorKind.API_KEY,
    actorId: randomUUID(),
    operation: 'GET /v1/connections/:connectionId/records',
    ...more,
  });

describe('encodeAuditEvent', () => {
  it('covers every field of AuditEvent, PolicyEvaluation and AuditEventBatch (a new one must be encoded here too)', () => {
    const string = (number: number, name: string) => [number, name, 'scalar', 'STRING', 'IMPLICIT'];
    expect(shape(AuditEventSchema)).toEqual([
      string(1, 'event_id'),
      [2, 'occurred_at', 'message', 'google.protobuf.Timestamp', 'EXPLICIT'],
      string(3, 'org_id'),
      string(4, 'application_id'),
      string(5, 'user_id'),
      string(6, 'integration'),
      string(7, 'capability'),
      string(8, 'resource'),
      [9, 'action', 'enum', 'contextgateway.audit.v1.AuditAction', 'IMPLICIT'],
      [10, 'outcome', 'enum', 'contextgateway.audit.v1.AuditOutcome', 'IMPLICIT'],
      [11, 'phase', 'enum', 'contextgateway.audit.v1.AuditPhase', 'IMPLICIT'],
      [12, 'policy', 'message', 'contextgateway.audit.v1.PolicyEvaluation', 'EXPLICIT'],
      string(13, 'error_code'),
      string(14, 'request_id'),
      string(15, 'trace_id'),
      [16, 'latency_ms', 'scalar', 'UINT32', 'IMPLICIT'],
      [17, 'actor_kind', 'enum', 'contextgateway.audit.v1.ActorKind', 'IMPLICIT'],
      string(18, 'actor_id'),
      string(19, 'connection_id'),
      string(20, 'intent_event_id'),
      string(21, 'operation'),
      string(22, 'approval_id'),
      string(23, 'mcp_virtual_server'),
    ]);
    expect(shape(PolicyEvaluationSchema)).toEqual([
      string(1, 'decided_by'),
      string(2, 'reason'),
      [3, 'matched_rule_ids', 'list', 'STRING', 'IMPLICIT'],
    ]);
    expect(shape(AuditEventBatchSchema)).toEqual([
      string(1, 'batch_id'),
      [2, 'events', 'list', 'contextgateway.audit.v1.AuditEvent', 'IMPLICIT'],
    ]);
  });

  it.each([
    ['a records query', queryEvent()],
    ['an empty event', create(AuditEventSchema)],
    [
      'a denial with matched rules, one of them empty',
      queryEvent({
        outcome: AuditOutcome.DENIED,
        errorCode: 'policy_denied',
        policy: { decidedBy: 'org', reason: 'blocked', matchedRuleIds: ['r1', '', 'r3'] },
      }),
    ],
    ['an empty policy and a time at the epoch', queryEvent({ policy: {}, occurredAt: timestampFromDate(new Date(0)) })],
    [
      'a time before 1970 (negative seconds and nanos)',
      queryEvent({ occurredAt: timestampFromDate(new Date(-1_001)) }),
    ],
    [
      'an outcome linked to its intent, beyond ASCII',
      queryEvent({
        phase: AuditPhase.OUTCOME,
        intentEventId: randomUUID(),
        mcpVirtualServer: 'équipe-✓',
        approvalId: randomUUID(),
      }),
    ],
  ])('writes exactly what toBinary writes: %s', (_, message) => {
    expect(hexLines(encodeAuditEvent(message))).toEqual(hexLines(toBinary(AuditEventSchema, message)));
  });

  it('writes exactly what toBinary writes for any event', () => {
    fc.assert(
      fc.property(event, (init) => {
        const message = create(AuditEventSchema, init);
        expect(hexLines(encodeAuditEvent(message))).toEqual(hexLines(toBinary(AuditEventSchema, message)));
      }),
      { numRuns: 500 },
    );
  });

  it('leaves fields it does not know to the generic encoder, which keeps them', () => {
    const known = toBinary(AuditEventSchema, queryEvent());
    // Field 99, a string: what a newer peer's event would carry.
    const decoded = fromBinary(AuditEventSchema, Buffer.concat([known, Buffer.from([0x9a, 0x06, 0x01, 0x78])]));
    expect(hexLines(encodeAuditEvent(decoded))).toEqual(hexLines(toBinary(AuditEventSchema, decoded)));
    expect(encodeAuditEvent(decoded).length).toBe(known.length + 4);
  });

  it('leaves a time with fields it does not know to the generic encoder, which keeps them', () => {
    const occurredAt = timestampFromDate(new Date('2026-12-07T07:50:01.234Z'));
    // The Timestamp with a field 3, a string: what a newer peer's time would carry.
    const time = Buffer.concat([toBinary(TimestampSchema, occurredAt), Buffer.from([0x1a, 0x01, 0x78])]);
    const rest = toBinary(AuditEventSchema, queryEvent({ occurredAt: undefined }));
    const decoded = fromBinary(AuditEventSchema, Buffer.concat([Buffer.from([0x12, time.length]), time, rest]));
    expect(decoded.occurredAt?.$unknown).toHaveLength(1);
    expect(hexLines(encodeAuditEvent(decoded))).toEqual(hexLines(toBinary(AuditEventSchema, decoded)));
    expect(encodeAuditEvent(decoded).length).toBe(rest.length + 2 + time.length);
  });

  it('does not let an event longer than the scratch buffer spill into the next one', () => {
    const long = queryEvent({ resource: 'r'.repeat(40_000), operation: '✓'.repeat(10_000) });
    const short = queryEvent();
    expect(hexLines(encodeAuditEvent(long))).toEqual(hexLines(toBinary(AuditEventSchema, long)));
    expect(hexLines(encodeAuditEvent(short))).toEqual(hexLines(toBinary(AuditEventSchema, short)));
  });
});

describe('encodeAuditBatch', () => {
  it('writes exactly what toBinary writes for a batch of any events', () => {
    fc.assert(
      fc.property(text, fc.array(event, { minLength: 1, maxLength: 5 }), (batchId, inits) => {
        const messages = inits.map((init) => create(AuditEventSchema, init));
        const expected = toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { batchId, events: messages }));
        expect(hexLines(encodeAuditBatch(batchId, messages.map(encodeAuditEvent)))).toEqual(hexLines(expected));
      }),
      { numRuns: 200 },
    );
  });

  it('decodes back to the events the audit service appends', () => {
    const events = [queryEvent(), queryEvent({ outcome: AuditOutcome.DENIED, errorCode: 'grant_revoked' })];
    const batchId = randomUUID();
    const decoded = fromBinary(AuditEventBatchSchema, encodeAuditBatch(batchId, events.map(encodeAuditEvent)));
    expect(decoded.batchId).toBe(batchId);
    expect(decoded.events).toEqual(events);
  });
});
