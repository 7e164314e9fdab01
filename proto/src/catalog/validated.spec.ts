import { create } from '@bufbuild/protobuf';
import { timestampFromDate, ValueSchema } from '@bufbuild/protobuf/wkt';

import {
  ActorKind,
  AuditAction,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
} from '../gen/contextgateway/audit/v1/audit_pb.js';
import { defineEvent } from './descriptors.js';
import { events, streams } from './streams.js';
import { validateEvent } from './validated.js';

const event = (eventId: string) =>
  create(AuditEventSchema, {
    eventId,
    occurredAt: timestampFromDate(new Date('2026-12-07T05:00:00Z')),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
    policy: { decidedBy: 'org', matchedRuleIds: ['r1'] },
  });

/** Every object reachable from value, value included. */
function objectsIn(value: unknown): object[] {
  if (typeof value !== 'object' || value === null) return [];
  return [value, ...Object.values(value).flatMap(objectsIn)];
}

describe('validateEvent', () => {
  it('freezes a message that passes, every nested message and list included', () => {
    const batch = create(events.auditRecordedBatch.message, {
      batchId: '0193a1b2-0000-7000-8000-0000000000ff',
      events: [event('0193a1b2-0000-7000-8000-00000000000a'), event('0193a1b2-0000-7000-8000-00000000000b')],
    });
    const checked = validateEvent(events.auditRecordedBatch, batch);
    expect(checked).toEqual({ ok: true, message: batch });
    const parts = objectsIn(batch);
    // the batch, its list, and per event: itself, its timestamp, its policy and the policy's list
    expect(parts).toHaveLength(2 + 2 * 4);
    expect(parts.filter((part) => !Object.isFrozen(part))).toEqual([]);
    expect(() => batch.events[0]!.policy!.matchedRuleIds.push('r2')).toThrow(TypeError);
  });

  it('freezes what a oneof and a map hold', () => {
    const descriptor = defineEvent({
      stream: streams.audit,
      subject: 'test.value',
      publishers: ['gateway'],
      message: ValueSchema,
      messageId: () => 'id',
    });
    const value = create(ValueSchema, {
      kind: {
        case: 'structValue',
        value: {
          fields: {
            a: { kind: { case: 'listValue', value: { values: [{ kind: { case: 'numberValue', value: 1 } }] } } },
          },
        },
      },
    });
    expect(validateEvent(descriptor, value).ok).toBe(true);
    expect(objectsIn(value).filter((part) => !Object.isFrozen(part))).toEqual([]);
  });

  it('leaves a message that fails as it was, and lists its problems', () => {
    const bad = event('not-a-uuid');
    const checked = validateEvent(events.auditRecorded, bad);
    expect(checked).toEqual({ ok: false, problems: [{ path: 'eventId', message: 'must be a lower-case UUID' }] });
    expect(objectsIn(bad).some((part) => Object.isFrozen(part))).toBe(false);
  });
});
