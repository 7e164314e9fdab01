import {
  create,
  createFileRegistry,
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  ScalarType,
  toJson,
} from '@bufbuild/protobuf';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
  isWrapperDesc,
  ListValueSchema,
  NullValue,
  StructSchema,
  TimestampSchema,
  ValueSchema,
} from '@bufbuild/protobuf/wkt';
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
const json = fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue>;
const jsonObject: fc.Arbitrary<JsonObject> = fc.dictionary(text, json, { maxKeys: 4 });

/**
 * Any message of the type, built from its descriptor field by field (a field added to the
 * proto is generated without a change here): each field set or left out, each value of its
 * kind, zero values often (left out of proto3 JSON), nested messages to a depth of two.
 */
function messageOf(desc: DescMessage, depth = 2): fc.Arbitrary<MessageShape<DescMessage>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) if (!field.oneof) model[field.localName] = fieldValue(field, depth);
  for (const oneof of desc.oneofs)
    model[oneof.localName] = fc.oneof(
      fc.constant({ case: undefined }),
      ...oneof.fields.map((field) => fieldValue(field, depth).map((value) => ({ case: field.localName, value }))),
    );
  return fc.record(model, { requiredKeys: [] }).map((init) => create(desc, init as MessageInitShape<DescMessage>));
}

function fieldValue(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarValue(field.scalar);
    case 'enum':
      return enumNumber;
    case 'message':
      return messageValue(field.message, depth);
    case 'list':
      return fc.array(elementValue(field.listKind, field.scalar, field.message, depth), { maxLength: 4 });
    case 'map':
      return fc.dictionary(mapKey(field.mapKey), elementValue(field.mapKind, field.scalar, field.message, depth), {
        maxKeys: 3,
      });
  }
}

/** One value in a list or a map. */
function elementValue(
  kind: 'scalar' | 'enum' | 'message',
  scalar: ScalarType | undefined,
  message: DescMessage | undefined,
  depth: number,
): fc.Arbitrary<unknown> {
  if (kind === 'enum') return enumNumber;
  if (message) return messageValue(message, depth);
  if (scalar === undefined) throw new Error(`a ${kind} element with no type`);
  return scalarValue(scalar);
}

/** A message field's value as protobuf-es holds it: Struct and wrappers as plain values. */
function messageValue(desc: DescMessage, depth: number): fc.Arbitrary<unknown> {
  if (desc.typeName === TimestampSchema.typeName) return timestamp;
  if (desc.typeName === StructSchema.typeName) return jsonObject;
  if (desc.typeName === ValueSchema.typeName) return json.map((value) => fromJson(ValueSchema, value));
  if (desc.typeName === ListValueSchema.typeName)
    return fc.array(json, { maxLength: 3 }).map((values) => fromJson(ListValueSchema, values));
  if (isWrapperDesc(desc)) {
    const value = desc.fields[0];
    if (value?.fieldKind !== 'scalar') throw new Error(`${desc.typeName} is not a wrapper`);
    return scalarValue(value.scalar);
  }
  if (desc.typeName.startsWith('google.protobuf.')) throw new Error(`no generator for ${desc.typeName}`);
  return depth === 0 ? fc.constant(create(desc)) : messageOf(desc, depth - 1);
}

function scalarValue(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constant(0), fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 32 - 1 }));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.constant(0n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    case ScalarType.DOUBLE:
      return fc.oneof(fc.constant(0), fc.double());
    case ScalarType.FLOAT:
      return fc.oneof(fc.constant(0), fc.float());
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 8 });
  }
}

function mapKey(scalar: ScalarType): fc.Arbitrary<string> {
  return scalar === ScalarType.STRING ? text : scalarValue(scalar).map(String);
}

const auditEvent = messageOf(AuditEventSchema) as fc.Arbitrary<MessageShape<typeof AuditEventSchema>>;

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

  // Text with nothing to escape is quoted as it is, the rest left to JSON.stringify: both as the general path writes them.
  it.each([
    ['a quote', 'say "hi"'],
    ['a backslash', 'a\\b'],
    ['a control character', 'line\nbreak\u0000'],
    ['the last control character and DEL', '\u001f\u007f'],
    ['a lone high surrogate', 'x\ud800'],
    ['a lone low surrogate', '\udfffx'],
    ['a surrogate pair', 'emoji \ud83d\ude00'],
    ['line and paragraph separators', '\u2028\u2029'],
    ['plain text', 'connection:0193a1b2-0000-7000-8000-000000000001 ü €'],
  ])('writes a string with %s as JSON.stringify does', (_, value) => {
    const event = create(AuditEventSchema, { eventId: 'e', resource: value, policy: { matchedRuleIds: [value] } });
    expect(canonicalProtoJson(AuditEventSchema)(event)).toBe(general(AuditEventSchema, event));
    expect(canonicalProtoJson(AuditEventSchema)(event)).toContain(`"resource":${JSON.stringify(value)}`);
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

  it('writes times of the same second and of seconds in turn as the general path does, one after the other', () => {
    const write = canonicalProtoJson(AuditEventSchema);
    fc.assert(
      fc.property(
        fc.array(fc.record({ second: fc.integer({ min: 0, max: 2 }), nanos: fc.nat(999_999_999) }), { maxLength: 12 }),
        fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_797n }),
        (times, base) => {
          for (const { second, nanos } of times) {
            const event = create(AuditEventSchema, {
              eventId: 'e',
              occurredAt: { seconds: base + BigInt(second), nanos },
            });
            expect(write(event)).toBe(general(AuditEventSchema, event));
          }
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

/**
 * A schema with what AuditEvent does not hold yet: well-known types protobuf-es keeps as plain
 * values (Struct as a JsonObject, wrappers unboxed), NullValue (null in proto3 JSON), a proto3
 * `optional` scalar, a oneof and a map, in messages otherwise written in one pass.
 */
const wktFile = create(FileDescriptorProtoSchema, {
  name: 'audit/test/wkt.proto',
  package: 'audit.test',
  syntax: 'proto3',
  dependency: ['google/protobuf/struct.proto', 'google/protobuf/wrappers.proto', 'google/protobuf/timestamp.proto'],
  messageType: [
    {
      name: 'Plain',
      field: [
        scalarField('name', 1, FieldDescriptorProto_Type.STRING),
        messageField('details', 2, '.google.protobuf.Struct'),
        messageField('note', 3, '.google.protobuf.StringValue'),
        { ...enumField('nothing', 4, '.google.protobuf.NullValue'), proto3Optional: true, oneofIndex: 0 },
        { ...enumField('nothings', 5, '.google.protobuf.NullValue'), label: FieldDescriptorProto_Label.REPEATED },
        messageField('value', 6, '.google.protobuf.Value'),
        messageField('list', 7, '.google.protobuf.ListValue'),
        messageField('count', 8, '.google.protobuf.Int32Value'),
        messageField('at', 9, '.google.protobuf.Timestamp'),
      ],
      oneofDecl: [{ name: '_nothing' }],
    },
    {
      name: 'Mixed',
      field: [
        { ...scalarField('maybe', 1, FieldDescriptorProto_Type.INT32), proto3Optional: true, oneofIndex: 0 },
        { ...scalarField('text', 2, FieldDescriptorProto_Type.STRING), oneofIndex: 1 },
        { ...scalarField('number', 3, FieldDescriptorProto_Type.INT32), oneofIndex: 1 },
        { ...messageField('labels', 4, '.audit.test.Mixed.LabelsEntry'), label: FieldDescriptorProto_Label.REPEATED },
        messageField('plain', 5, '.audit.test.Plain'),
      ],
      oneofDecl: [{ name: '_maybe' }, { name: 'choice' }],
      nestedType: [
        {
          name: 'LabelsEntry',
          field: [
            scalarField('key', 1, FieldDescriptorProto_Type.STRING),
            scalarField('value', 2, FieldDescriptorProto_Type.STRING),
          ],
          options: { mapEntry: true },
        },
      ],
    },
    {
      name: 'Outer',
      field: [
        scalarField('id', 1, FieldDescriptorProto_Type.STRING),
        { ...scalarField('maybe', 2, FieldDescriptorProto_Type.INT32), proto3Optional: true, oneofIndex: 0 },
        messageField('plain', 3, '.audit.test.Plain'),
        messageField('mixed', 4, '.audit.test.Mixed'),
        { ...messageField('plains', 5, '.audit.test.Plain'), label: FieldDescriptorProto_Label.REPEATED },
      ],
      oneofDecl: [{ name: '_maybe' }],
    },
  ],
});
function scalarField(name: string, number: number, type: FieldDescriptorProto_Type) {
  return { name, number, type, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: name };
}
function messageField(name: string, number: number, typeName: string) {
  return { ...scalarField(name, number, FieldDescriptorProto_Type.MESSAGE), typeName };
}
function enumField(name: string, number: number, typeName: string) {
  return { ...scalarField(name, number, FieldDescriptorProto_Type.ENUM), typeName };
}
const wktRegistry = createFileRegistry(
  wktFile,
  (name) =>
    ({
      'google/protobuf/struct.proto': file_google_protobuf_struct,
      'google/protobuf/wrappers.proto': file_google_protobuf_wrappers,
      'google/protobuf/timestamp.proto': file_google_protobuf_timestamp,
    })[name],
);
const messageSchema = (name: string): DescMessage => {
  const desc = wktRegistry.getMessage(`audit.test.${name}`);
  if (!desc) throw new Error(`no ${name}`);
  return desc;
};
const OuterSchema = messageSchema('Outer');

const outer = messageOf(OuterSchema);

describe('canonicalProtoJson on well-known types, NullValue, optional scalars, oneofs and maps', () => {
  it('writes exactly the bytes of canonicalJson(toJson(message))', () => {
    const write = canonicalProtoJson(OuterSchema);
    fc.assert(
      fc.property(outer, (message) => {
        expect(write(message)).toBe(general(OuterSchema, message));
      }),
      { numRuns: 1_000 },
    );
  });

  it('writes a set NullValue as null, as toJson does', () => {
    const message = create(messageSchema('Plain'), {
      nothing: NullValue.NULL_VALUE,
      nothings: [NullValue.NULL_VALUE],
    });
    expect(canonicalProtoJson(messageSchema('Plain'))(message)).toBe('{"nothing":null,"nothings":[null]}');
  });
});
