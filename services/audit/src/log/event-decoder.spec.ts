import { randomUUID } from 'node:crypto';

import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { canonicalJson } from '@context-gateway/merkle-log';
import { ActorKind, AuditAction, AuditEventSchema, AuditOutcome, AuditPhase } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';

import { eventJson } from './audit-event-codec.js';
import { EventDecoder } from './event-decoder.js';
import { decodePacked, packPayloads } from './event-decoding.js';

const ORG = '0b0e6a3c-1111-4a7b-9c55-0d6f3f9c2a11';

function event(i: number) {
  return create(AuditEventSchema, {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date(Date.UTC(2026, 10, 25, 9, 0, 0, i))),
    orgId: i % 2 === 0 ? ORG : '',
    applicationId: `app-${i}`,
    userId: i % 3 === 0 ? '' : `user-${i}`,
    integration: 'github',
    capability: 'github:read:repos',
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.DENIED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
    policy: { decidedBy: 'org', reason: 'deny "quoted" é', matchedRuleIds: ['r2', 'r1'] },
  });
}

describe('decodePacked', () => {
  it('gives each event its canonical JSON and search columns, and each bad payload its reason, in input order', () => {
    const good = [event(0), event(1)];
    const payloads = [
      toBinary(AuditEventSchema, good[0]!),
      Buffer.from([0xff, 0xff, 0xff]),
      toBinary(AuditEventSchema, { ...event(2), eventId: 'not-a-uuid', userId: 'x'.repeat(300) }),
      toBinary(AuditEventSchema, good[1]!),
    ];
    const batch = decodePacked(packPayloads(payloads));
    expect(batch.failures).toEqual([
      { index: 1, code: 'malformed_request', message: 'not a valid AuditEvent' },
      { index: 2, code: 'validation_failed', message: expect.stringMatching(/^eventId .*; userId /) },
    ]);
    expect(batch.eventIds).toEqual([good[0]!.eventId, '', '', good[1]!.eventId]);
    expect(batch.canonicalEvents[0]).toBe(canonicalJson(eventJson(good[0]!)));
    expect(batch.canonicalEvents[3]).toBe(canonicalJson(eventJson(good[1]!)));
    expect(batch.orgIds).toEqual([ORG, null, null, null]);
    expect(batch.userIds).toEqual([null, null, null, 'user-1']);
    expect(batch.occurredAtMs[3]).toBe(Date.UTC(2026, 10, 25, 9, 0, 0, 1));
    expect(batch.actions[0]).toBe('data_query');
    expect(batch.outcomes[3]).toBe('denied');
  });
});

describe('EventDecoder without threads', () => {
  it('decodes a batch larger than a slice in order, failure indexes counted across slices', async () => {
    const decoder = new EventDecoder(0);
    const events = Array.from({ length: 600 }, (_, i) => event(i));
    const payloads = events.map((e) => toBinary(AuditEventSchema, e) as Uint8Array);
    payloads[555] = Buffer.from('garbage');
    const batch = await decoder.decode(payloads);
    expect(batch.eventIds).toHaveLength(600);
    expect(batch.failures.map((f) => f.index)).toEqual([555]);
    expect(batch.eventIds[599]).toBe(events[599]!.eventId);
    expect(batch.applicationIds[300]).toBe('app-300');
    expect((await decoder.decode([])).eventIds).toEqual([]);
    await decoder.close();
  });
});

describe('EventDecoder on worker threads', () => {
  const fake = new URL('./testing/fake-decoder.worker.mjs', import.meta.url);
  const payload = (first: number) => Uint8Array.of(first, 0, 0);

  it('splits a batch across its threads and puts it back together in order', async () => {
    const decoder = new EventDecoder(2, fake);
    try {
      const batch = await decoder.decode(Array.from({ length: 9 }, (_, i) => payload(i)));
      expect(batch.eventIds).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8']);
      expect(batch.actions).toHaveLength(9);
    } finally {
      await decoder.close();
    }
  });

  it('fails what a dying thread had in hand, and replaces the thread on the next call', async () => {
    const decoder = new EventDecoder(1, fake);
    try {
      await expect(decoder.decode([payload(1), payload(0xff)])).rejects.toThrow(
        'audit event decoder thread exited (3)',
      );
      await expect(decoder.decode([payload(0xfe)])).rejects.toThrow('audit event decoder: refused');
      expect((await decoder.decode([payload(7)])).eventIds).toEqual(['7']);
    } finally {
      await decoder.close();
    }
  });
});
