import { randomUUID } from 'node:crypto';

import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { canonicalJson } from '@context-gateway/merkle-log';
import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  AuditEventBatchSchema,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
} from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';

import { eventJson } from './audit-event-codec.js';
import { EventDecoder } from './event-decoder.js';
import {
  canonicalEventBytes,
  type DecodedBatch,
  decodePacked,
  packPayloads,
  type Payload,
  PayloadKind,
  SEARCH_COPY_COLUMNS,
  searchFieldBytes,
  Utf8Column,
} from './event-decoding.js';

const ORG = '0b0e6a3c-1111-4a7b-9c55-0d6f3f9c2a11';
const plain = (data: Uint8Array): Payload => ({ data, kind: PayloadKind.Event });
const batched = (data: Uint8Array): Payload => ({ data, kind: PayloadKind.Batch });

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

/** Event i's encoded search columns read back (COPY binary fields): uuids as text, times as ms, NULL as null. */
function searchRow(batch: DecodedBatch, i: number): Record<string, string | number | null> {
  const bytes = Buffer.from(searchFieldBytes(batch, i) ?? []);
  const row: Record<string, string | number | null> = {};
  let at = 0;
  for (const { name, type } of SEARCH_COPY_COLUMNS) {
    const length = bytes.readInt32BE(at);
    at += 4;
    if (length < 0) {
      row[name] = null;
      continue;
    }
    const field = bytes.subarray(at, at + length);
    at += length;
    const hex = field.toString('hex');
    if (type === 'uuid')
      row[name] = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    else if (type === 'timestamptz') row[name] = Number(field.readBigInt64BE() / 1000n + 946_684_800_000n);
    else row[name] = field.toString('utf8');
  }
  expect(at).toBe(bytes.length);
  return row;
}

describe('decodePacked', () => {
  it('gives each event its canonical JSON and search columns, and each bad payload its reason, in input order', () => {
    const good = [event(0), event(1)];
    const payloads = [
      plain(toBinary(AuditEventSchema, good[0]!)),
      plain(Buffer.from([0xff, 0xff, 0xff])),
      plain(toBinary(AuditEventSchema, { ...event(2), eventId: 'not-a-uuid', userId: 'x'.repeat(300) })),
      plain(toBinary(AuditEventSchema, good[1]!)),
    ];
    const batch = decodePacked(packPayloads(payloads));
    expect(batch.failures).toEqual([
      { index: 1, code: 'malformed_request', message: 'not a valid AuditEvent' },
      { index: 2, code: 'validation_failed', message: expect.stringMatching(/^eventId .*; userId /) },
    ]);
    // One slot per event: the failed messages have none.
    expect(batch.messageIndex).toEqual([0, 3]);
    expect(batch.eventIds).toEqual([good[0]!.eventId, good[1]!.eventId]);
    const canonical = (i: number) => Buffer.from(canonicalEventBytes(batch, i) ?? []).toString('utf8');
    expect(canonical(0)).toBe(canonicalJson(eventJson(good[0]!)));
    expect(canonical(1)).toBe(canonicalJson(eventJson(good[1]!)));
    expect(canonicalEventBytes(batch, 2)).toBeUndefined();
    expect(batch.occurredAtMs[1]).toBe(Date.UTC(2026, 10, 25, 9, 0, 0, 1));
    expect(searchRow(batch, 0)).toEqual({
      event_id: good[0]!.eventId,
      org_id: ORG,
      occurred_at: Date.UTC(2026, 10, 25, 9, 0, 0, 0),
      application_id: 'app-0',
      user_id: null,
      integration: 'github',
      capability: 'github:read:repos',
      action: 'data_query',
      outcome: 'denied',
    });
    expect(searchRow(batch, 1)).toMatchObject({ event_id: good[1]!.eventId, org_id: null, user_id: 'user-1' });
  });

  it('expands a group-commit batch into its events, in order, and refuses a batch whole when one event is invalid', () => {
    const three = [event(4), event(5), event(6)];
    const bad = { ...event(7), eventId: 'not-a-uuid' };
    const pack = (events: AuditEvent[]) =>
      toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { batchId: randomUUID(), events }));
    const payloads = [
      plain(toBinary(AuditEventSchema, event(8))),
      batched(pack(three)),
      batched(pack([event(9), bad])),
      batched(pack([])),
      batched(Buffer.from([0xff, 0xff, 0xff])),
      // A batch message whose header was lost reads as one (invalid) event: dead-lettered, not misread.
      plain(pack(three)),
    ];
    const batch = decodePacked(packPayloads(payloads));
    expect(batch.messageIndex).toEqual([0, 1, 1, 1]);
    expect(batch.eventIds.slice(1)).toEqual(three.map((e) => e.eventId));
    expect(batch.failures.map((f) => [f.index, f.code])).toEqual([
      [2, 'validation_failed'],
      [3, 'validation_failed'],
      [4, 'malformed_request'],
      [5, expect.stringMatching(/malformed_request|validation_failed/)],
    ]);
    expect(batch.failures[0]?.message).toContain('events.1.eventId');
  });

  it('dead-letters a batch whose event says it is shorter than its fields (fromBinary read on and took it)', () => {
    // The event's length two bytes short: its last field (actor_kind) runs past it. fromBinary
    // reads that field whole and goes on, so the event decoded as sent and was appended; the
    // hand decoder (proto/src/codecs/audit-event.ts) refuses the message as malformed.
    const one = Buffer.from(toBinary(AuditEventSchema, event(10)));
    const header = Buffer.from(
      toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { batchId: randomUUID(), events: [] })),
    );
    expect(one.length).toBeLessThan(0x4000);
    const length = one.length - 2;
    const bytes = Buffer.concat([header, Buffer.from([0x12, (length & 0x7f) | 0x80, length >> 7]), one]);
    const batch = decodePacked(packPayloads([batched(bytes)]));
    expect(batch.eventIds).toEqual([]);
    expect(batch.failures).toEqual([{ index: 0, code: 'malformed_request', message: 'not a valid AuditEventBatch' }]);
  });

  it('dead-letters an event whose policy says it is shorter than its fields (the event descriptor’s decoder, not fromBinary)', () => {
    // A policy field of length 2 holding reason's tag and length, not its 2 bytes ("ab"):
    // fromBinary reads on and takes reason "ab", a valid event; the hand decoder refuses it.
    const overrun = Buffer.concat([
      toBinary(AuditEventSchema, event(11)),
      Buffer.from([0x62, 0x02, 0x12, 0x02, 0x61, 0x62]),
    ]);
    const batch = decodePacked(packPayloads([plain(overrun)]));
    expect(batch.eventIds).toEqual([]);
    expect(batch.failures).toEqual([{ index: 0, code: 'malformed_request', message: 'not a valid AuditEvent' }]);
  });
});

describe('Utf8Column', () => {
  // The texts that take the most UTF-8 per UTF-16 unit: 3 bytes ('€', a lone surrogate, which
  // becomes U+FFFD), 2 units as 4 bytes (an emoji); and the empty text.
  const texts = ['', 'a', '€'.repeat(500), '\ud800', '😀x', 'plain ascii '.repeat(300), '\udfff€', 'é'.repeat(2_000)];

  it('grows across its first guess without losing or shifting a byte, whatever that guess was', () => {
    const input = Array.from({ length: 40 }, (_, i) => texts[i % texts.length]!.repeat(1 + (i % 3)));
    const expected = input.map((text) => Buffer.from(text, 'utf8'));
    for (const guess of [0, 100, 10_000, 10_000_000]) {
      const column = new Utf8Column(guess);
      for (const text of input) column.add(text);
      expect(Buffer.compare(Buffer.from(column.bytes()), Buffer.concat(expected))).toBe(0);
      expect(column.ends).toHaveLength(input.length);
      expected.forEach((bytes, i) => {
        expect(
          Buffer.compare(Buffer.from(column.bytes().subarray(column.ends[i - 1] ?? 0, column.ends[i])), bytes),
        ).toBe(0);
      });
    }
  });

  it('hands over a buffer of its own after growing, which moves to another thread', () => {
    const column = new Utf8Column(0);
    for (const text of texts) column.add(text);
    const bytes = column.bytes();
    const copy = Buffer.from(bytes);
    expect(bytes.byteOffset).toBe(0);
    const moved = structuredClone(bytes, { transfer: [bytes.buffer as ArrayBuffer] });
    expect(bytes.buffer.byteLength).toBe(0);
    expect(Buffer.compare(Buffer.from(moved), copy)).toBe(0);
  });

  it('decodes a batch whose canonical JSON outgrows the first guess (control characters: 6 bytes of JSON each)', () => {
    const noisy = Array.from({ length: 30 }, (_, i) => {
      const e = event(i);
      e.resource = '\u0001'.repeat(1_000);
      return e;
    });
    const decoded = decodePacked(packPayloads(noisy.map((e) => plain(toBinary(AuditEventSchema, e)))));
    noisy.forEach((e, i) => {
      expect(Buffer.from(canonicalEventBytes(decoded, i) ?? []).toString('utf8')).toBe(canonicalJson(eventJson(e)));
    });
  });
});

describe('EventDecoder without threads', () => {
  it('decodes a batch larger than a slice in order, failure indexes counted across slices', async () => {
    const decoder = new EventDecoder(0);
    const events = Array.from({ length: 600 }, (_, i) => event(i));
    const payloads = events.map((e) => plain(toBinary(AuditEventSchema, e)));
    payloads[555] = plain(Buffer.from('garbage'));
    const batch = await decoder.decode(payloads);
    expect(batch.eventIds).toHaveLength(599);
    expect(batch.failures.map((f) => f.index)).toEqual([555]);
    expect(batch.messageIndex[598]).toBe(599);
    expect(batch.eventIds[598]).toBe(events[599]!.eventId);
    // Slices of 250 put back together: the search columns' ranges shifted with them.
    expect(searchRow(batch, 300)).toMatchObject({ event_id: events[300]!.eventId, application_id: 'app-300' });
    expect(searchRow(batch, 598)).toMatchObject({ event_id: events[599]!.eventId, application_id: 'app-599' });
    expect(Buffer.from(canonicalEventBytes(batch, 598) ?? []).toString()).toBe(canonicalJson(eventJson(events[599]!)));
    expect((await decoder.decode([])).eventIds).toEqual([]);
    await decoder.close();
  });
});

describe('EventDecoder on worker threads', () => {
  const fake = new URL('./testing/fake-decoder.worker.mjs', import.meta.url);
  const payload = (first: number) => plain(Uint8Array.of(first, 0, 0));

  it('splits a batch across its threads and puts it back together in order', async () => {
    const decoder = new EventDecoder(2, fake);
    try {
      const batch = await decoder.decode(Array.from({ length: 9 }, (_, i) => payload(i)));
      expect(batch.eventIds).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8']);
      expect(batch.messageIndex).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(batch.searchFieldEnds).toHaveLength(9);
      // The canonical bytes of each slice follow the previous slice's, each event's range shifted with them.
      expect(batch.canonicalEnds).toEqual([3, 6, 9, 12, 15, 18, 21, 24, 27]);
      const canonical = Array.from({ length: 9 }, (_, i) =>
        Buffer.from(canonicalEventBytes(batch, i) ?? []).toString(),
      );
      expect(canonical).toEqual(['"0"', '"1"', '"2"', '"3"', '"4"', '"5"', '"6"', '"7"', '"8"']);
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
