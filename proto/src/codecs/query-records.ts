import { create, type MessageInitShape, toBinary, type UnknownField } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

import {
  type QueryRecordsRequest,
  QueryRecordsRequestSchema,
  type QueryRecordsResponse,
} from '../gen/contextgateway/personalserver/v1/personal_server_pb.js';
import { lengthDelimitedSize, varintSize, writeStringField, writeVarint, writeVarint64 } from '../wire.js';
import { expectWireType, readInt64, readString, readTimestamp, skipUnknown } from './wire-read.js';

/**
 * `ps.v1.shard.<n>.query`'s messages by hand, the one contract on every records query: the
 * gateway encodes the request and decodes the reply, the shard decodes the request (and
 * encodes the reply, services/personal-server/src/records/query-reply.ts). protobuf-es walks
 * the descriptor for each (create, a read context, a Map lookup and a tag array per field):
 * about 2 % of the gateway's CPU under `pnpm bench:query`. query-records.spec.ts proves these
 * equal to it: the encoder byte for byte `toBinary`, the decoders value for value `fromBinary`
 * on anything fromBinary reads, and never accepting what fromBinary refuses.
 *
 * The decoders are stricter in one way: a known field with the wrong wire type is refused
 * (fromBinary reads it as the declared type, turning garbage into some value), so a peer's
 * bug becomes malformed_request instead of a query for the wrong thing.
 */

/** Tags of QueryRecordsRequest (field number << 3 | wire type: 0 varint, 2 length-delimited). */
const ORG_ID = 0x0a; // string org_id = 1
const APPLICATION_ID = 0x12; // string application_id = 2
const CONNECTION_ID = 0x1a; // string connection_id = 3
const TYPE = 0x22; // string type = 4
const SINCE_MS = 0x28; // int64 since_ms = 5
const LIMIT = 0x30; // uint32 limit = 6
const CURSOR = 0x3a; // string cursor = 7
const FIELDS = 0x42; // repeated string fields = 8
const POLICY_TYPES = 0x4a; // repeated string policy_types = 9

const REQUEST_TYPE = 'contextgateway.personalserver.v1.QueryRecordsRequest';
const RESPONSE_TYPE = 'contextgateway.personalserver.v1.QueryRecordsResponse';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT32_MAX = 2 ** 32 - 1;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

type QueryRequestInit = MessageInitShape<typeof QueryRecordsRequestSchema>;

const isString = (value: unknown): boolean => value == null || typeof value === 'string';
const isStringList = (value: unknown): boolean =>
  value == null || (Array.isArray(value) && value.every((s) => typeof s === 'string'));

/** Whether the encoder below writes `init` exactly as toBinary would; anything else goes to toBinary. */
function handEncodable(init: QueryRequestInit): boolean {
  const { sinceMs, limit } = init;
  return (
    isString(init.orgId) &&
    isString(init.applicationId) &&
    isString(init.connectionId) &&
    isString(init.type) &&
    isString(init.cursor) &&
    isStringList(init.fields) &&
    isStringList(init.policyTypes) &&
    (sinceMs == null || (typeof sinceMs === 'bigint' && sinceMs >= INT64_MIN && sinceMs <= INT64_MAX)) &&
    (limit == null || (Number.isInteger(limit) && limit >= 0 && limit <= UINT32_MAX)) &&
    // A decoded message carrying fields this encoder does not know: toBinary writes them back.
    !(init as { $unknown?: UnknownField[] }).$unknown?.length
  );
}

/**
 * A QueryRecordsRequest's wire bytes: exactly `toBinary(QueryRecordsRequestSchema,
 * create(QueryRecordsRequestSchema, init))` — fields in number order, proto3 defaults (empty
 * strings, 0) left out, every element of a list written. A value toBinary would refuse (a
 * limit that is no uint32, a since_ms outside int64) or unknown fields go through toBinary
 * itself, which refuses or writes them as before.
 *
 * The result is a Buffer sliced from Node's shared pool (allocUnsafe): its `.buffer` holds
 * other allocations too, so callers use the view itself (offset and length), never `.buffer`.
 */
export function encodeQueryRecordsRequest(init: QueryRequestInit): Uint8Array {
  if (!handEncodable(init)) return toBinary(QueryRecordsRequestSchema, create(QueryRecordsRequestSchema, init));
  const orgId = init.orgId ?? '';
  const applicationId = init.applicationId ?? '';
  const connectionId = init.connectionId ?? '';
  const type = init.type ?? '';
  const cursor = init.cursor ?? '';
  const fields = init.fields ?? [];
  const policyTypes = init.policyTypes ?? [];
  const sinceMs = init.sinceMs ?? 0n;
  const limit = init.limit ?? 0;

  const orgIdLength = Buffer.byteLength(orgId);
  const applicationIdLength = Buffer.byteLength(applicationId);
  const connectionIdLength = Buffer.byteLength(connectionId);
  const typeLength = Buffer.byteLength(type);
  const cursorLength = Buffer.byteLength(cursor);
  const fieldsUtf8 = fields.map((s) => [s, Buffer.byteLength(s)] as const);
  const policyTypesUtf8 = policyTypes.map((s) => [s, Buffer.byteLength(s)] as const);
  // int64 as a varint: a negative one is its 64-bit two's complement, ten bytes.
  const sinceWire = sinceMs === 0n ? 0n : BigInt.asUintN(64, sinceMs);

  let size =
    lengthDelimitedSize(orgIdLength) +
    lengthDelimitedSize(applicationIdLength) +
    lengthDelimitedSize(connectionIdLength) +
    lengthDelimitedSize(typeLength) +
    (sinceMs === 0n ? 0 : 1 + varint64Size(sinceWire)) +
    (limit === 0 ? 0 : 1 + varintSize(limit)) +
    lengthDelimitedSize(cursorLength);
  // A list's empty element is still sent: its tag and a zero length.
  for (const [, length] of fieldsUtf8) size += lengthDelimitedSize(length) || 2;
  for (const [, length] of policyTypesUtf8) size += lengthDelimitedSize(length) || 2;

  // From Node's pool, not zeroed (a zeroed Uint8Array cost a third of the encode): the check
  // below guarantees every byte is written, so nothing stale from the pool goes out.
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  at = writeStringField(out, at, ORG_ID, orgId, orgIdLength);
  at = writeStringField(out, at, APPLICATION_ID, applicationId, applicationIdLength);
  at = writeStringField(out, at, CONNECTION_ID, connectionId, connectionIdLength);
  at = writeStringField(out, at, TYPE, type, typeLength);
  if (sinceMs !== 0n) {
    out[at++] = SINCE_MS;
    at = sinceWire <= MAX_SAFE ? writeVarint(out, at, Number(sinceWire)) : writeVarint64(out, at, sinceWire);
  }
  if (limit !== 0) {
    out[at++] = LIMIT;
    at = writeVarint(out, at, limit);
  }
  at = writeStringField(out, at, CURSOR, cursor, cursorLength);
  for (const [s, length] of fieldsUtf8) at = writeStringField(out, at, FIELDS, s, length, true);
  for (const [s, length] of policyTypesUtf8) at = writeStringField(out, at, POLICY_TYPES, s, length, true);
  // The sizes above and the writes must agree; a slip would send stale pool bytes.
  if (at !== size) throw new Error(`QueryRecordsRequest: ${at} bytes written of ${size}`);
  return out;
}

/** Bytes an unsigned 64-bit varint takes (with numbers where they are exact: a time in ms is). */
function varint64Size(value: bigint): number {
  if (value <= MAX_SAFE) return varintSize(Number(value));
  let size = 1;
  while (value >= 0x80n) {
    value >>= 7n;
    size += 1;
  }
  return size;
}

/**
 * A QueryRecordsRequest from its wire bytes: what `fromBinary(QueryRecordsRequestSchema,
 * bytes)` returns, unknown fields kept in `$unknown` the same way; throws on anything
 * fromBinary refuses (a truncated field, a bad varint or tag, invalid UTF-8) and on a known
 * field with the wrong wire type.
 */
export function decodeQueryRecordsRequest(bytes: Uint8Array): QueryRecordsRequest {
  const message: QueryRecordsRequest = {
    $typeName: REQUEST_TYPE,
    orgId: '',
    applicationId: '',
    connectionId: '',
    type: '',
    sinceMs: 0n,
    limit: 0,
    cursor: '',
    fields: [],
    policyTypes: [],
  };
  const reader = new BinaryReader(bytes);
  let unknown: UnknownField[] | undefined;
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        message.orgId = readString(reader, fieldNo, wireType);
        break;
      case 2:
        message.applicationId = readString(reader, fieldNo, wireType);
        break;
      case 3:
        message.connectionId = readString(reader, fieldNo, wireType);
        break;
      case 4:
        message.type = readString(reader, fieldNo, wireType);
        break;
      case 5:
        message.sinceMs = readInt64(reader, fieldNo, wireType);
        break;
      case 6:
        expectWireType(fieldNo, wireType, WireType.Varint);
        message.limit = reader.uint32();
        break;
      case 7:
        message.cursor = readString(reader, fieldNo, wireType);
        break;
      case 8:
        message.fields.push(readString(reader, fieldNo, wireType));
        break;
      case 9:
        message.policyTypes.push(readString(reader, fieldNo, wireType));
        break;
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, 1, unknown);
    }
  }
  if (unknown) message.$unknown = unknown;
  return message;
}

/**
 * A QueryRecordsResponse from its wire bytes, as `fromBinary(QueryRecordsResponseSchema,
 * bytes)` returns it: `recordsJson` a view into `bytes` (no copy; the gateway splices it into
 * its answer), `syncedAt` set only when sent. Throws where fromBinary throws, on a known field
 * with the wrong wire type, and on a sync time whose fields run past its own length.
 */
export function decodeQueryRecordsResponse(bytes: Uint8Array): QueryRecordsResponse {
  const message: QueryRecordsResponse = { $typeName: RESPONSE_TYPE, recordsJson: new Uint8Array(0), nextCursor: '' };
  const reader = new BinaryReader(bytes);
  let unknown: UnknownField[] | undefined;
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        expectWireType(fieldNo, wireType, WireType.LengthDelimited);
        message.recordsJson = reader.bytes();
        break;
      case 2:
        message.nextCursor = readString(reader, fieldNo, wireType);
        break;
      case 3:
        expectWireType(fieldNo, wireType, WireType.LengthDelimited);
        // A repeated message field merges into the one before, as fromBinary does.
        message.syncedAt = readTimestamp(reader, message.syncedAt, 'synced_at', 2);
        break;
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, 1, unknown);
    }
  }
  if (unknown) message.$unknown = unknown;
  return message;
}
