import { create, type DescMessage, type MessageShape, toJson } from '@bufbuild/protobuf';
import { canonicalJson } from '@context-gateway/merkle-log';
import {
  AuditEntrySchema,
  AuditEventBatchSchema,
  AuditEventSchema,
  GetEntryResponseSchema,
} from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { canonicalProtoJson } from './canonical-proto-json.js';

/** What the leaf committed to before: the general path, toJson then RFC 8785. */
const general = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>) =>
  canonicalJson(toJson(schema, message));

// Any UTF-16 text, lone surrogates and control characters included, and often empty (a left-out field).
const text = fc.oneof(fc.constant(''), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }));
// Known enum numbers, 0 (left out), and numbers the schema does not know (written as numbers).
const enumNumber = fc.oneof(fc.integer({ min: 0, max: 13 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const timestamp = fc.record({
  seconds: fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_799n }),
  nanos: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 999 }).map((ms) => ms * 1_000_000),
    fc.nat(999_999_999),
  ),
});
const auditEvent = fc
  .record(
    {
      eventId: text,
      occurredAt: timestamp,
      orgId: text,
      applicationId: text,
      userId: text,
      resource: text,
      action: enumNumber,
      outcome: enumNumber,
      phase: enumNumber,
      policy: fc.record({ decidedBy: text, reason: text, matchedRuleIds: fc.array(text, { maxLength: 4 }) }),
      errorCode: text,
      latencyMs: fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 32 - 1 })),
      actorKind: enumNumber,
      operation: text,
      mcpVirtualServer: text,
    },
    { requiredKeys: [] },
  )
  .map((init) => create(AuditEventSchema, init as Parameters<typeof create<typeof AuditEventSchema>>[1]));

describe('canonicalProtoJson', () => {
  it('writes exactly the bytes of canonicalJson(toJson(event)) for any AuditEvent', () => {
    const write = canonicalProtoJson(AuditEventSchema);
    fc.assert(
      fc.property(auditEvent, (event) => {
        expect(write(event)).toBe(general(AuditEventSchema, event));
      }),
      { numRuns: 2_000 },
    );
  });

  it('writes a set message with nothing in it as {} and an unset one not at all', () => {
    const write = canonicalProtoJson(AuditEventSchema);
    const withEmptyPolicy = create(AuditEventSchema, { eventId: 'e', policy: {} });
    expect(write(withEmptyPolicy)).toBe('{"eventId":"e","policy":{}}');
    expect(write(create(AuditEventSchema, { eventId: 'e' }))).toBe('{"eventId":"e"}');
    expect(write(create(AuditEventSchema))).toBe('{}');
  });

  it('agrees with the general path on lists of messages and on types it leaves to it (64-bit, bytes)', () => {
    fc.assert(
      fc.property(
        fc.array(auditEvent, { maxLength: 5 }),
        text,
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (events, id, index) => {
          const batch = create(AuditEventBatchSchema, { batchId: id, events });
          expect(canonicalProtoJson(AuditEventBatchSchema)(batch)).toBe(general(AuditEventBatchSchema, batch));
          const entry = create(AuditEntrySchema, {
            index,
            event: events[0],
            leafHash: Buffer.from(id),
          });
          expect(canonicalProtoJson(AuditEntrySchema)(entry)).toBe(general(AuditEntrySchema, entry));
          const response = create(GetEntryResponseSchema, { entry, inclusionProof: [Buffer.from(id)] });
          expect(canonicalProtoJson(GetEntryResponseSchema)(response)).toBe(general(GetEntryResponseSchema, response));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a time proto3 JSON cannot write, as toJson does', () => {
    for (const occurredAt of [
      { seconds: 253_402_300_800n, nanos: 0 },
      { seconds: -62_135_596_801n, nanos: 0 },
      { seconds: 0n, nanos: -1 },
      { seconds: 0n, nanos: 1_000_000_000 },
    ]) {
      const event = create(AuditEventSchema, { eventId: 'e', occurredAt });
      expect(() => general(AuditEventSchema, event)).toThrow();
      expect(() => canonicalProtoJson(AuditEventSchema)(event)).toThrow();
    }
  });

  it('refuses a value of the wrong type, as toJson does', () => {
    const event = create(AuditEventSchema, { eventId: 'e' });
    (event as unknown as Record<string, unknown>).latencyMs = 'soon';
    expect(() => general(AuditEventSchema, event)).toThrow();
    expect(() => canonicalProtoJson(AuditEventSchema)(event)).toThrow();
  });
});
