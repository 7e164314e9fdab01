import { create, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';

import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  PolicyEvaluationSchema,
} from '../gen/contextgateway/audit/v1/audit_pb.js';
import { auditEventBatchOf, auditEventProblems, passesAuditEventChecks, validateAuditEvent } from './audit.js';
import { events } from './streams.js';
import { type Validated, validateEvent } from './validated.js';

const valid = (): AuditEvent =>
  create(AuditEventSchema, {
    eventId: '0193a1b2-0000-7000-8000-000000000001',
    orgId: '0193a1b2-0000-7000-8000-000000000002',
    occurredAt: timestampFromDate(new Date('2026-12-07T04:00:00Z')),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
    applicationId: 'a'.repeat(256),
    resource: 'r'.repeat(1024),
    approvalId: 'p'.repeat(256),
    mcpVirtualServer: 'v'.repeat(256),
    policy: rules(),
  });
const rules = () =>
  create(PolicyEvaluationSchema, {
    decidedBy: 'd'.repeat(256),
    reason: 'x'.repeat(1024),
    matchedRuleIds: Array.from({ length: 64 }, () => 'r'.repeat(1024)),
  });

// Every checked field around its bound: mostly valid (so the quick pass is often true) and
// now and then one past it or otherwise invalid, alone or with others.
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof({ weight: 19, arbitrary: valid }, { weight: 1, arbitrary: invalid });
const ofLength = (min: number, max: number) => fc.integer({ min, max }).map((n) => 'x'.repeat(n));
const textUpTo = (max: number) =>
  mostly(fc.oneof(fc.constant(''), fc.string({ maxLength: 8 }), ofLength(max - 1, max)), ofLength(max + 1, max + 2));
const uuid = fc.uuid({ version: 7 });
const notUuid = fc.oneof(
  uuid.map((u) => u.toUpperCase()),
  uuid.map((u) => u.slice(1)),
  fc.string({ maxLength: 8 }),
);
const optionalUuid = mostly(fc.oneof(fc.constant(''), uuid), notUuid);
// Numbers the wire cannot carry as they are (toBinary refuses them; the hand encoder must never see them).
const notInteger = fc.constantFrom(Number.NaN, 1.5, Number.POSITIVE_INFINITY);
const enumValue = mostly(
  fc.integer({ min: 1, max: 12 }),
  fc.oneof(fc.constant(0), notInteger, fc.constantFrom(2 ** 31, -(2 ** 31) - 1)),
);
const occurredAt = mostly(
  fc.date({ min: new Date('2000-01-01Z'), max: new Date('2100-01-01Z'), noInvalidDate: true }).map(timestampFromDate),
  fc.oneof(
    fc.constant(undefined),
    fc.constant(create(TimestampSchema, { seconds: 10n ** 15n })),
    fc.constant(create(TimestampSchema, { seconds: 2n ** 63n })),
    fc
      .oneof(notInteger, fc.constantFrom(-1, 1_000_000_000))
      .map((nanos) => create(TimestampSchema, { seconds: 1n, nanos })),
  ),
);
const latencyMs = mostly(
  fc.oneof(fc.constant(0), fc.nat(), fc.constant(0xffffffff)),
  fc.oneof(notInteger, fc.constantFrom(-1, 2 ** 32)),
);
const policy = fc.option(
  fc.record({
    decidedBy: textUpTo(256),
    reason: textUpTo(1024),
    matchedRuleIds: mostly(
      fc.array(textUpTo(1024), { maxLength: 3 }),
      fc.integer({ min: 64, max: 65 }).map((n) => Array.from({ length: n }, () => 'rule')),
    ),
  }),
  { nil: undefined, freq: 3 },
);
const auditEvent: fc.Arbitrary<MessageInitShape<typeof AuditEventSchema>> = fc.record({
  eventId: mostly(uuid, fc.oneof(fc.constant(''), notUuid)),
  orgId: optionalUuid,
  intentEventId: optionalUuid,
  occurredAt,
  action: enumValue,
  outcome: enumValue,
  phase: enumValue,
  actorKind: enumValue,
  latencyMs,
  applicationId: textUpTo(256),
  userId: textUpTo(256),
  integration: textUpTo(256),
  capability: textUpTo(256),
  resource: textUpTo(1024),
  errorCode: textUpTo(256),
  requestId: textUpTo(256),
  traceId: textUpTo(256),
  actorId: textUpTo(256),
  connectionId: textUpTo(256),
  operation: textUpTo(256),
  approvalId: textUpTo(256),
  mcpVirtualServer: textUpTo(256),
  policy,
});

describe('audit event validation', () => {
  it('passes an event at every bound', () => {
    expect(validateAuditEvent(valid())).toEqual([]);
    expect(auditEventProblems(valid())).toEqual([]);
  });

  it.each<[string, (e: AuditEvent) => void, string]>([
    ['an upper-case event id', (e) => (e.eventId = e.eventId.toUpperCase()), 'eventId'],
    ['no event id', (e) => (e.eventId = ''), 'eventId'],
    ['an org id that is not a UUID', (e) => (e.orgId = 'org-1'), 'orgId'],
    ['an intent event id that is not a UUID', (e) => (e.intentEventId = 'intent'), 'intentEventId'],
    ['no occurredAt', (e) => (e.occurredAt = undefined), 'occurredAt'],
    [
      'an occurredAt no Date holds',
      (e) => (e.occurredAt = create(TimestampSchema, { seconds: 10n ** 15n })),
      'occurredAt',
    ],
    ['no action', (e) => (e.action = AuditAction.UNSPECIFIED), 'action'],
    ['no outcome', (e) => (e.outcome = AuditOutcome.UNSPECIFIED), 'outcome'],
    ['no phase', (e) => (e.phase = AuditPhase.UNSPECIFIED), 'phase'],
    ['no actor kind', (e) => (e.actorKind = ActorKind.UNSPECIFIED), 'actorKind'],
    ['a 257-character application id', (e) => (e.applicationId = 'a'.repeat(257)), 'applicationId'],
    ['a 257-character user id', (e) => (e.userId = 'u'.repeat(257)), 'userId'],
    ['a 257-character integration', (e) => (e.integration = 'i'.repeat(257)), 'integration'],
    ['a 257-character capability', (e) => (e.capability = 'c'.repeat(257)), 'capability'],
    ['a 1025-character resource', (e) => (e.resource = 'r'.repeat(1025)), 'resource'],
    ['a 257-character error code', (e) => (e.errorCode = 'e'.repeat(257)), 'errorCode'],
    ['a 257-character request id', (e) => (e.requestId = 'q'.repeat(257)), 'requestId'],
    ['a 257-character trace id', (e) => (e.traceId = 't'.repeat(257)), 'traceId'],
    ['a 257-character actor id', (e) => (e.actorId = 'k'.repeat(257)), 'actorId'],
    ['a 257-character connection id', (e) => (e.connectionId = 'n'.repeat(257)), 'connectionId'],
    ['a 257-character operation', (e) => (e.operation = 'o'.repeat(257)), 'operation'],
    ['a 257-character approval id', (e) => (e.approvalId = 'p'.repeat(257)), 'approvalId'],
    ['a 257-character virtual server', (e) => (e.mcpVirtualServer = 'v'.repeat(257)), 'mcpVirtualServer'],
    [
      'a 257-character policy layer',
      (e) => (e.policy = { ...rules(), decidedBy: 'd'.repeat(257) }),
      'policy.decidedBy',
    ],
    ['a 1025-character policy reason', (e) => (e.policy = { ...rules(), reason: 'x'.repeat(1025) }), 'policy.reason'],
    [
      '65 matched rules',
      (e) => (e.policy = { ...rules(), matchedRuleIds: Array.from({ length: 65 }, () => 'rule') }),
      'policy.matchedRuleIds',
    ],
    [
      'a 1025-character matched rule id',
      (e) => (e.policy = { ...rules(), matchedRuleIds: ['rule', 'r'.repeat(1025)] }),
      'policy.matchedRuleIds.1',
    ],
  ])('refuses %s, naming it', (_, spoil, path) => {
    const event = valid();
    spoil(event);
    expect(validateAuditEvent(event).map((p) => p.path)).toEqual([path]);
  });

  // The hand encoder (gateway audit-event-bytes.ts) writes numbers as given: each of these would
  // come out as bytes no decoder reads back as the event. toBinary refuses them all but a nanos
  // of a whole second or more, which is no Timestamp (its spec: 0 to 999,999,999).
  it.each<[string, (e: AuditEvent) => void, string, boolean]>([
    ['a negative latency', (e) => (e.latencyMs = -1), 'latencyMs', true],
    ['a fractional latency', (e) => (e.latencyMs = 1.5), 'latencyMs', true],
    ['a NaN latency', (e) => (e.latencyMs = Number.NaN), 'latencyMs', true],
    ['a latency past uint32', (e) => (e.latencyMs = 2 ** 32), 'latencyMs', true],
    [
      'negative nanos',
      (e) => (e.occurredAt = create(TimestampSchema, { seconds: 1n, nanos: -1 })),
      'occurredAt',
      false,
    ],
    [
      'fractional nanos',
      (e) => (e.occurredAt = create(TimestampSchema, { seconds: 1n, nanos: 1.5 })),
      'occurredAt',
      true,
    ],
    [
      'NaN nanos',
      (e) => (e.occurredAt = create(TimestampSchema, { seconds: 1n, nanos: Number.NaN })),
      'occurredAt',
      true,
    ],
    ['a whole second of nanos', (e) => (e.occurredAt = create(TimestampSchema, { nanos: 1e9 })), 'occurredAt', false],
    ['seconds past int64', (e) => (e.occurredAt = create(TimestampSchema, { seconds: 2n ** 63n })), 'occurredAt', true],
    ['an action past int32', (e) => (e.action = 2 ** 31), 'action', true],
    ['a fractional outcome', (e) => (e.outcome = 1.5 as AuditOutcome), 'outcome', true],
    ['a NaN phase', (e) => (e.phase = Number.NaN), 'phase', true],
    ['an actor kind below int32', (e) => (e.actorKind = -(2 ** 31) - 1), 'actorKind', true],
  ])('refuses %s, naming it', (_, spoil, path, binaryRefuses) => {
    const event = valid();
    spoil(event);
    expect(validateAuditEvent(event).map((p) => p.path)).toEqual([path]);
    expect(passesAuditEventChecks(event)).toBe(false);
    if (binaryRefuses) expect(() => toBinary(AuditEventSchema, event)).toThrow();
  });

  it('passes the numbers at their bounds', () => {
    const event = valid();
    event.latencyMs = 0xffffffff;
    event.occurredAt = create(TimestampSchema, { seconds: 1n, nanos: 999_999_999 });
    event.action = -(2 ** 31);
    event.outcome = 2 ** 31 - 1;
    expect(validateAuditEvent(event)).toEqual([]);
  });

  // The quick pass and the full list are two spellings of the same checks: a check added to
  // one and not the other would let an event through, or refuse it naming nothing.
  it('passes the quick checks exactly when the full list is empty', () => {
    const seen = { passed: 0, refused: 0 };
    fc.assert(
      fc.property(auditEvent, (init) => {
        const event = create(AuditEventSchema, init);
        const passes = auditEventProblems(event).length === 0;
        expect(passesAuditEventChecks(event)).toBe(passes);
        seen[passes ? 'passed' : 'refused']++;
      }),
      { numRuns: 3_000 },
    );
    // Both sides tried often (about a quarter of the events pass), or the property proves little.
    expect(Math.min(seen.passed, seen.refused)).toBeGreaterThan(300);
  });
});

describe('a batch of validated events', () => {
  const sealed = (eventId: string): Validated<AuditEvent> => {
    const checked = validateEvent(events.auditRecorded, create(AuditEventSchema, { ...valid(), eventId }));
    if (!checked.ok) throw new Error('invalid fixture');
    return checked.message;
  };
  const ids = ['0193a1b2-0000-7000-8000-00000000000a', '0193a1b2-0000-7000-8000-00000000000b'];

  it('is made frozen, and passes the batch validation the audit service applies', () => {
    const checked = auditEventBatchOf('0193a1b2-0000-7000-8000-0000000000ff', ids.map(sealed));
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(events.auditRecordedBatch.validate?.(checked.message)).toEqual([]);
    expect(Object.isFrozen(checked.message) && Object.isFrozen(checked.message.events)).toBe(true);
  });

  it.each<[string, string, string[], string[]]>([
    ['a batch id that is not a UUID', 'batch-1', ids, ['batchId']],
    ['no events', '0193a1b2-0000-7000-8000-0000000000ff', [], ['events']],
    ['an event id twice', '0193a1b2-0000-7000-8000-0000000000ff', [ids[0]!, ids[1]!, ids[0]!], ['events.2.eventId']],
  ])('is refused with %s', (_, batchId, eventIds, paths) => {
    const checked = auditEventBatchOf(batchId, eventIds.map(sealed));
    expect(checked.ok ? [] : checked.problems.map((p) => p.path)).toEqual(paths);
  });
});
