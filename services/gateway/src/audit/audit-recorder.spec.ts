import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { systemClock } from '@context-gateway/clock';
import { activeTraceIds, currentRequestContext, runWithRequestContext } from '@context-gateway/observability';
import { type AuditEvent, AuditEventSchema, AuditPhase } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';

import type { Env } from '../env.js';
import {
  AUDIT_ACTIONS,
  AUDIT_ACTOR_KINDS,
  AUDIT_OUTCOMES,
  type AuditRecord,
  AuditRecorder,
  toEvent,
} from './audit-recorder.js';

/** The event as the generic create() makes it: what toEvent's literal must equal. */
function createdEvent(
  record: AuditRecord,
  phase: AuditPhase,
  occurredAt: Date,
  eventId: string,
  intentEventId = '',
): AuditEvent {
  return create(AuditEventSchema, {
    eventId,
    occurredAt: timestampFromDate(occurredAt),
    orgId: record.orgId ?? '',
    applicationId: record.applicationId ?? '',
    userId: record.userId ?? '',
    integration: record.integration ?? '',
    capability: record.capability ?? '',
    resource: record.resource ?? '',
    connectionId: record.connectionId ?? '',
    action: AUDIT_ACTIONS[record.action],
    outcome: AUDIT_OUTCOMES[record.outcome],
    phase,
    policy: record.policy
      ? {
          decidedBy: record.policy.decidedBy,
          reason: record.policy.reason,
          matchedRuleIds: record.policy.matchedRuleIds ?? [],
        }
      : undefined,
    errorCode: record.errorCode ?? '',
    requestId: record.requestId ?? currentRequestContext()?.requestId ?? '',
    traceId: activeTraceIds().traceId ?? '',
    latencyMs: Math.max(0, Math.round(record.latencyMs ?? 0)),
    actorKind: AUDIT_ACTOR_KINDS[record.actorKind ?? 'anonymous'],
    actorId: record.actorId ?? '',
    intentEventId,
    operation: record.operation ?? '',
    approvalId: record.approvalId ?? '',
    mcpVirtualServer: record.mcpVirtualServer ?? '',
  });
}

const text = fc.option(fc.string({ unit: 'binary', maxLength: 40 }), { nil: undefined });
const record: fc.Arbitrary<AuditRecord> = fc.record(
  {
    action: fc.constantFrom(...(Object.keys(AUDIT_ACTIONS) as (keyof typeof AUDIT_ACTIONS)[])),
    outcome: fc.constantFrom(...(Object.keys(AUDIT_OUTCOMES) as (keyof typeof AUDIT_OUTCOMES)[])),
    orgId: text,
    applicationId: text,
    userId: text,
    integration: text,
    capability: text,
    resource: text,
    connectionId: text,
    actorKind: fc.option(fc.constantFrom(...(Object.keys(AUDIT_ACTOR_KINDS) as (keyof typeof AUDIT_ACTOR_KINDS)[])), {
      nil: undefined,
    }),
    actorId: text,
    policy: fc.option(
      fc.record(
        {
          decidedBy: fc.string({ maxLength: 8 }),
          reason: fc.string({ maxLength: 20 }),
          matchedRuleIds: fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }),
        },
        { requiredKeys: ['decidedBy', 'reason'] },
      ),
      { nil: undefined },
    ),
    errorCode: text,
    latencyMs: fc.option(fc.double({ min: -10, max: 1e6, noNaN: true }), { nil: undefined }),
    operation: text,
    requestId: text,
    approvalId: text,
    mcpVirtualServer: text,
  },
  { requiredKeys: ['action', 'outcome'] },
);
const phase = fc.constantFrom(AuditPhase.COMPLETE, AuditPhase.INTENT, AuditPhase.OUTCOME);
/** Clock readings, fractional and before 1970 included (the Date a clock hands out keeps whole ms). */
const clockMs = fc.oneof(
  fc.integer({ min: -8.64e15, max: 8.64e15 }),
  fc.double({ min: -1e13, max: 1e13, noNaN: true }),
  fc.constantFrom(0, -1, -0.5, 999.9, 1_767_225_600_123),
);

describe('toEvent', () => {
  it('is the message create() makes of the same record, field for field and byte for byte', () => {
    fc.assert(
      fc.property(
        record,
        phase,
        clockMs,
        fc.uuid(),
        fc.option(fc.uuid(), { nil: undefined }),
        (r, p, ms, id, intent) => {
          const made = runWithRequestContext({ requestId: 'req-1' }, () => toEvent(r, p, ms, id, intent));
          const expected = runWithRequestContext({ requestId: 'req-1' }, () =>
            createdEvent(r, p, new Date(ms), id, intent),
          );
          // Key by key, with the one deliberate difference (toEvent's comment) put into expected:
          // create() leaves an unset policy's key out, toEvent writes it as undefined.
          expect(made).toStrictEqual({ ...expected, policy: expected.policy });
          expect(toBinary(AuditEventSchema, made)).toEqual(toBinary(AuditEventSchema, expected));
        },
      ),
    );
  });

  it('takes the request id of the request it is recorded in when the record names none', () => {
    const event = runWithRequestContext({ requestId: 'from-context' }, () =>
      toEvent({ action: 'data_query', outcome: 'allowed' }, AuditPhase.COMPLETE, 0, 'e'),
    );
    expect(event.requestId).toBe('from-context');
  });

  it('refuses a clock reading no Date can hold, as timestampFromDate did', () => {
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1])
      expect(() => toEvent({ action: 'data_query', outcome: 'allowed' }, AuditPhase.COMPLETE, ms, 'e')).toThrow(
        RangeError,
      );
  });
});

describe('AuditRecorder.record', () => {
  /** A recorder whose group commit is `append` (no NATS behind it). */
  function recorderAppending(append: (event: AuditEvent) => Promise<void>): AuditRecorder {
    const recorder = new AuditRecorder(
      { options: {} } as unknown as NatsConnection,
      { AUDIT_PUBLISH_TIMEOUT_MS: 1000 } as Env,
      systemClock,
    );
    (recorder as unknown as { commits: { append: typeof append } }).commits = { append };
    return recorder;
  }

  it('turns a synchronous throw of the append (validation, encoding, a flush) into audit_unavailable', async () => {
    const outage = new Error('publisher gone');
    const recorder = recorderAppending(() => {
      throw outage;
    });
    let recorded: Promise<string> | undefined;
    // A rejection, never a throw past the guard's .catch() or the interceptor's await.
    expect(() => {
      recorded = recorder.record({ action: 'data_query', outcome: 'allowed' });
    }).not.toThrow();
    await expect(recorded).rejects.toMatchObject({ code: 'audit_unavailable', cause: outage });
  });

  it('resolves with the event id once the append resolves, and maps its rejection the same way', async () => {
    await expect(
      recorderAppending(() => Promise.resolve()).record({ action: 'data_query', outcome: 'allowed' }, undefined, {
        eventId: 'e-1',
      }),
    ).resolves.toBe('e-1');
    await expect(
      recorderAppending(() => Promise.reject(new Error('no ack'))).record({ action: 'data_query', outcome: 'denied' }),
    ).rejects.toMatchObject({ code: 'audit_unavailable' });
  });
});
