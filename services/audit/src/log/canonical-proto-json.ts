import {
  type DescEnum,
  type DescField,
  type DescMessage,
  type MessageShape,
  ScalarType,
  toJson,
} from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence, NullValueSchema, type Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { canonicalJson } from '@context-gateway/merkle-log';

/** A compiled writer: the message's canonical JSON text. */
type Writer = (message: unknown) => string;

/** Writes one field's `"key":value` member, or nothing (undefined) when proto3 JSON leaves it out. */
type MemberWriter = (message: Record<string, unknown>) => string | undefined;

/**
 * `canonicalJson(toJson(schema, message))` — RFC 8785 canonical JSON of the message's
 * proto3 JSON form, what an audit leaf commits to — written in one pass from a writer
 * compiled per message type, without the intermediate JSON object and its sorted copy
 * (the two took about a third of the decoder thread's time per event).
 *
 * The writer is compiled from the descriptor, so a field added to the proto is covered
 * without a change here: members in the order RFC 8785 sorts their JSON names (UTF-16 code
 * units), each value as toJson writes it and JSON.stringify serializes it. Only the kinds
 * whose proto3 JSON is plain are written directly (strings, booleans, 32-bit integers,
 * enums, nested messages, lists of them); a message type with any other field (64-bit
 * integers, floats, bytes, maps, oneofs, a well-known type but Timestamp, NullValue) and
 * every well-known type itself are written by the general path, toJson then canonicalJson, so what is
 * not written here cannot be written differently. canonical-proto-json.spec.ts compares
 * the two on generated events.
 */
export function canonicalProtoJson<Desc extends DescMessage>(schema: Desc): (message: MessageShape<Desc>) => string {
  return compile(schema);
}

const compiled = new WeakMap<DescMessage, Writer>();

function compile(desc: DescMessage): Writer {
  const known = compiled.get(desc);
  if (known) return known;
  const general: Writer = (message) => canonicalJson(toJson(desc, message as MessageShape<typeof desc>));
  if (desc.typeName === TimestampSchema.typeName) {
    compiled.set(desc, timestampJson);
    return timestampJson;
  }
  if (desc.typeName.startsWith('google.protobuf.') || !desc.fields.every(isPlain)) {
    compiled.set(desc, general);
    return general;
  }
  // Set before the members compile, so a recursive message type finds this one.
  const members: MemberWriter[] = [];
  const writer: Writer = (message) => {
    let out = '{';
    for (const member of members) {
      const text = member(message as Record<string, unknown>);
      if (text === undefined) continue;
      out += out.length === 1 ? text : `,${text}`;
    }
    return `${out}}`;
  };
  compiled.set(desc, writer);
  // Array.prototype.sort without a comparator orders by UTF-16 code units, as RFC 8785 does.
  const byJsonName = new Map(desc.fields.map((f) => [f.jsonName, f]));
  for (const name of [...byJsonName.keys()].sort()) {
    const field = byJsonName.get(name);
    if (field) members.push(member(field));
  }
  return writer;
}

/** The field kinds written here; anything else sends its message type down the general path. */
function isPlain(field: DescField): boolean {
  if (field.oneof) return false;
  switch (field.fieldKind) {
    case 'scalar':
      return PLAIN_SCALARS.has(field.scalar);
    case 'list':
      if (field.listKind === 'enum') return isPlainEnum(field.enum);
      if (field.listKind === 'message') return isPlainMessage(field.message);
      return PLAIN_SCALARS.has(field.scalar);
    case 'enum':
      return isPlainEnum(field.enum);
    case 'message':
      return isPlainMessage(field.message);
    case 'map':
      return false;
  }
}

/**
 * A message type written here as a field's value. Of the well-known types only Timestamp:
 * protobuf-es holds a Struct field as a plain JsonObject and a wrapper field (StringValue, …)
 * as the bare value, which only the general path on the containing message reads right.
 */
function isPlainMessage(desc: DescMessage): boolean {
  return !desc.typeName.startsWith('google.protobuf.') || desc.typeName === TimestampSchema.typeName;
}

/** Every enum but google.protobuf.NullValue, which proto3 JSON writes as null, not by name. */
function isPlainEnum(desc: DescEnum): boolean {
  return desc.typeName !== NullValueSchema.typeName;
}

/** Scalars whose proto3 JSON value is the JavaScript value itself. */
const PLAIN_SCALARS: ReadonlySet<ScalarType> = new Set([
  ScalarType.STRING,
  ScalarType.BOOL,
  ScalarType.INT32,
  ScalarType.UINT32,
  ScalarType.SINT32,
  ScalarType.FIXED32,
  ScalarType.SFIXED32,
]);

function member(field: DescField): MemberWriter {
  const key = `${JSON.stringify(field.jsonName)}:`;
  const local = field.localName;
  switch (field.fieldKind) {
    case 'list': {
      const item = valueWriter(field);
      return (message) => {
        const items = message[local] as unknown[];
        if (items.length === 0) return undefined;
        let out = `${key}[`;
        for (let i = 0; i < items.length; i += 1) out += (i === 0 ? '' : ',') + item(items[i]);
        return `${out}]`;
      };
    }
    case 'message': {
      const write = compile(field.message);
      // A message field is written whenever it is set, even when every field inside is zero ({}).
      return (message) => {
        const value = message[local];
        return value === undefined ? undefined : key + write(value);
      };
    }
    case 'enum':
    case 'scalar': {
      const write = valueWriter(field);
      if (field.presence !== FeatureSet_FieldPresence.IMPLICIT) {
        // Explicit presence (proto3 `optional`): written when set, whatever its value.
        return (message) =>
          Object.prototype.hasOwnProperty.call(message, local) && message[local] !== undefined
            ? key + write(message[local])
            : undefined;
      }
      // Implicit presence: left out at its zero value ('', false, 0, the enum's first value).
      const zero =
        field.fieldKind === 'enum'
          ? field.enum.values[0]?.number
          : field.scalar === ScalarType.STRING
            ? ''
            : field.scalar === ScalarType.BOOL
              ? false
              : 0;
      return (message) => {
        const value = message[local];
        return value === zero ? undefined : key + write(value);
      };
    }
    case 'map':
      throw new Error(`canonicalProtoJson: ${field.toString()} is written by the general path`);
  }
}

/** One value of a singular or list field, as JSON text. */
function valueWriter(field: DescField & { fieldKind: 'scalar' | 'enum' | 'list' }): (value: unknown) => string {
  const kind = field.fieldKind === 'list' ? field.listKind : field.fieldKind;
  if (kind === 'message' && field.message) {
    const write = compile(field.message);
    return write;
  }
  if (kind === 'enum' && field.enum) {
    // By name; a number the schema does not know stays a number (toJson does the same).
    const { value: byNumber } = field.enum;
    const names = new Map(field.enum.values.map((v) => [v.number, JSON.stringify(byNumber[v.number]?.jsonName)]));
    return (value) => names.get(value as number) ?? JSON.stringify(checked(value, 'number'));
  }
  if (field.scalar === ScalarType.STRING) return (value) => jsonString(checked(value, 'string') as string);
  if (field.scalar === ScalarType.BOOL) return (value) => (checked(value, 'boolean') ? 'true' : 'false');
  return (value) => JSON.stringify(checked(value, 'number'));
}

/**
 * Text JSON.stringify (and so RFC 8785) writes as it is, between quotes: no quote, backslash
 * or control character to escape, and no surrogate at all (a lone one is escaped; a pair is
 * not, but is left to JSON.stringify rather than told apart here).
 */
// eslint-disable-next-line no-control-regex -- control characters are what JSON must escape
const VERBATIM_IN_JSON = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/**
 * JSON.stringify(value) for a string. Most of an event's strings (ids, names) need no
 * escaping, and testing for that and quoting takes about half the time of JSON.stringify's
 * call; anything else goes through JSON.stringify itself.
 */
function jsonString(value: string): string {
  return VERBATIM_IN_JSON.test(value) ? `"${value}"` : JSON.stringify(value);
}

/** A value of the wrong type is a bug in whoever built the message: toJson refuses it too. */
function checked(value: unknown, type: 'string' | 'number' | 'boolean'): unknown {
  if (typeof value !== type) throw new Error(`canonicalProtoJson: expected a ${type}, got ${typeof value}`);
  return value;
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in ms: the range proto3 JSON can write a Timestamp in. */
const TIMESTAMP_MS_MIN = -62_135_596_800_000;
const TIMESTAMP_MS_MAX = 253_402_300_799_000;

/**
 * The last whole second timestampJson wrote, as RFC 3339 without its fraction: the events
 * of a batch mostly share their second, and formatting it (a Date and toISOString) was
 * about a seventh of the canonical JSON's time per event.
 */
let lastSeconds: bigint | undefined;
let lastSecondText = '';

/**
 * A Timestamp's proto3 JSON, RFC 3339 in UTC with 0, 3, 6 or 9 digits of fraction, as a JSON
 * string — what toJson writes (and refuses) for every event's occurredAt, without the
 * general path's detour.
 */
function timestampJson(message: unknown): string {
  const { seconds, nanos } = message as Timestamp;
  const ms = Number(seconds) * 1000;
  if (!(ms >= TIMESTAMP_MS_MIN && ms <= TIMESTAMP_MS_MAX) || !(nanos >= 0 && nanos <= 999_999_999))
    throw new Error(`canonicalProtoJson: ${TimestampSchema.typeName} out of range`);
  let fraction = 'Z';
  if (nanos > 0) {
    const digits = String(nanos + 1_000_000_000).slice(1);
    fraction = digits.endsWith('000000')
      ? `.${digits.slice(0, 3)}Z`
      : digits.endsWith('000')
        ? `.${digits.slice(0, 6)}Z`
        : `.${digits}Z`;
  }
  if (seconds !== lastSeconds) {
    lastSeconds = seconds;
    lastSecondText = new Date(ms).toISOString().slice(0, -5);
  }
  return `"${lastSecondText}${fraction}"`;
}
