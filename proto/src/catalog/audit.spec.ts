import { create } from '@bufbuild/protobuf';
import { timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt';

import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  PolicyEvaluationSchema,
} from '../gen/contextgateway/audit/v1/audit_pb.js';
import { auditEventProblems, validateAuditEvent } from './audit.js';

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
    policy: rules(),
  });
const rules = () =>
  create(PolicyEvaluationSchema, {
    decidedBy: 'user',
    reason: 'x'.repeat(1024),
    matchedRuleIds: Array.from({ length: 64 }, () => 'rule'),
  });

describe('audit event validation', () => {
  it('passes an event at every bound', () => {
    expect(validateAuditEvent(valid())).toEqual([]);
    expect(auditEventProblems(valid())).toEqual([]);
  });

  // The quick all-passes test must never let through what the full list would refuse.
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
    ['a 1025-character policy reason', (e) => (e.policy = { ...rules(), reason: 'x'.repeat(1025) }), 'policy.reason'],
    [
      '65 matched rules',
      (e) => (e.policy = { ...rules(), matchedRuleIds: Array.from({ length: 65 }, () => 'rule') }),
      'policy.matchedRuleIds',
    ],
  ])('refuses %s, naming it', (_, spoil, path) => {
    const event = valid();
    spoil(event);
    expect(validateAuditEvent(event).map((p) => p.path)).toEqual([path]);
    expect(validateAuditEvent(event)).toEqual(auditEventProblems(event));
  });
});
