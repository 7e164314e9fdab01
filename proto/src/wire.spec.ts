import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from '@jest/globals';

import { AuditEventSchema } from './gen/contextgateway/audit/v1/audit_pb.js';
import { type Tag, writeStringField, writeStringFieldUnmeasured } from './wire.js';

// Both string writers against toBinary, on AuditEvent's event_id (field 1, tag 0x0a) and
// actor_id (field 18, two-byte tag 0x92 0x01). 42 UTF-16 units (at most 126 bytes) is the
// longest string writeStringFieldUnmeasured writes before its one length byte; 43 is measured.
const EVENT_ID: Tag = 0x0a;
const ACTOR_ID: Tag = [0x92, 0x01];

const values: [string, string][] = [
  ['ASCII', 'conn-0193a1b2'],
  ['non-ASCII (2, 3 and 4 bytes)', 'Zoë · 東京 · 🎵'],
  ['a lone surrogate (U+FFFD, as TextEncoder)', 'a\ud800b'],
  ['42 ASCII units', 'a'.repeat(42)],
  ['43 ASCII units', 'a'.repeat(43)],
  ['42 three-byte units (126 bytes)', '€'.repeat(42)],
  ['43 three-byte units (129 bytes, a two-byte length)', '€'.repeat(43)],
  ['21 emoji (42 units, 84 bytes)', '🎵'.repeat(21)],
  ['a long mixed string', 'é'.repeat(100) + 'x'.repeat(200)],
];

/** The room writeStringFieldUnmeasured asks for: 3 bytes a unit, plus the tag and a length. */
const room = (value: string) => Buffer.alloc(value.length * 3 + 2 + 5);

describe('writeStringFieldUnmeasured', () => {
  it.each(values)('writes %s as toBinary does, with a one-byte and a two-byte tag', (_name, value) => {
    for (const [tag, field] of [
      [EVENT_ID, 'eventId'],
      [ACTOR_ID, 'actorId'],
    ] as const) {
      const out = room(value);
      const end = writeStringFieldUnmeasured(out, 0, tag, value);
      expect(out.subarray(0, end)).toEqual(
        Buffer.from(toBinary(AuditEventSchema, create(AuditEventSchema, { [field]: value }))),
      );
    }
  });

  it('leaves an empty string out unless always, then writes tag and length 0', () => {
    const out = room('');
    expect(writeStringFieldUnmeasured(out, 0, ACTOR_ID, '')).toBe(0);
    expect(out.subarray(0, writeStringFieldUnmeasured(out, 0, ACTOR_ID, '', true))).toEqual(
      Buffer.from([0x92, 0x01, 0]),
    );
  });
});

describe('writeStringField', () => {
  it.each(values)('writes %s as toBinary does, measured or not', (_name, value) => {
    const expected = Buffer.from(toBinary(AuditEventSchema, create(AuditEventSchema, { eventId: value })));
    const out = room(value);
    expect(out.subarray(0, writeStringField(out, 0, 0x0a, value))).toEqual(expected);
    const again = room(value);
    expect(again.subarray(0, writeStringField(again, 0, 0x0a, value, Buffer.byteLength(value)))).toEqual(expected);
  });

  it('leaves an empty string out unless always', () => {
    const out = room('');
    expect(writeStringField(out, 0, 0x0a, '')).toBe(0);
    expect(out.subarray(0, writeStringField(out, 0, 0x0a, '', 0, true))).toEqual(Buffer.from([0x0a, 0]));
  });
});
