import type { DeletedRecord, NormalizedRecord } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { EncodedRequest } from '@context-gateway/messaging';
import {
  lengthDelimitedSize,
  timestampFieldSize,
  varintSize,
  WriteRecordsRequestSchema,
  writeStringField,
  writeTimestampField,
  writeVarint,
} from '@context-gateway/proto';

/** Wire tags of WriteRecordsRequest (field number << 3 | wire type; 2 = length-delimited). */
const USER_ID = 0x0a; // string user_id = 1
const CONNECTION_ID = 0x12; // string connection_id = 2
const INTEGRATION = 0x1a; // string integration = 3
const RECORDS = 0x22; // repeated RecordInput records = 4
const SYNCED_AT = 0x2a; // google.protobuf.Timestamp synced_at = 5
/** RecordInput's. */
const TYPE = 0x0a; // string type = 1
const EXTERNAL_ID = 0x12; // string external_id = 2
const DATA_JSON = 0x1a; // bytes data_json = 3
const SOURCE_UPDATED_AT = 0x22; // google.protobuf.Timestamp source_updated_at = 4
const DELETED = 0x28; // bool deleted = 5 (wire type 0, varint)

export interface WriteTarget {
  userId: string;
  connectionId: string;
  integration: string;
  /** When the run read the source: the apps' freshness mark. */
  syncedAt: Date;
}

/**
 * One `ps.v1.write_records` request, written straight into one buffer of its exact size: each
 * body is serialized (`JSON.stringify`) and written in place. Before, every body was copied
 * into a Uint8Array of its own (`TextEncoder`, an ArrayBuffer per record) and the generic
 * encoder (`create` + `toBinary`) then walked the 500 records reflectively and copied them
 * again, ~2 µs of the sync-worker's CPU per record. Byte for byte what
 * `toBinary(WriteRecordsRequestSchema, …)` writes for the records the worker built before —
 * fields in number order, defaults (empty strings, `deleted: false`) left out, times as
 * `timestampFromDate` makes them, a record's `occurredAt` sent only when it parses as a date —
 * which write-request.spec.ts checks.
 */
export function encodeWriteRecords(
  target: WriteTarget,
  upserts: readonly NormalizedRecord[],
  deletes: readonly DeletedRecord[],
): EncodedRequest {
  const count = upserts.length + deletes.length;
  // Per record: its JSON (upserts) and its time in ms (NaN: none), then each one's length.
  const json: string[] = new Array<string>(upserts.length);
  const times = new Float64Array(upserts.length);
  const jsonLengths = new Uint32Array(upserts.length);
  const lengths = new Uint32Array(count);
  // The run's own ids: a wrong one is our bug, not a record to quarantine.
  for (const field of ['userId', 'connectionId', 'integration'] as const) {
    if (typeof target[field] !== 'string')
      throw new AppError('internal', `The write target's ${field} is not a string`);
  }
  let size = lengthDelimitedSize(Buffer.byteLength(target.userId));
  size += lengthDelimitedSize(Buffer.byteLength(target.connectionId));
  size += lengthDelimitedSize(Buffer.byteLength(target.integration));
  for (let i = 0; i < upserts.length; i++) {
    const r = upserts[i] as NormalizedRecord;
    checkIds(r, i);
    const body = bodyJson(r, i);
    json[i] = body;
    const bodyLength = Buffer.byteLength(body);
    jsonLengths[i] = bodyLength;
    // Parsed once (a Date, then its time checked), as the worker did.
    const ms = r.occurredAt ? new Date(r.occurredAt).getTime() : Number.NaN;
    times[i] = ms;
    const length =
      lengthDelimitedSize(Buffer.byteLength(r.type)) +
      lengthDelimitedSize(Buffer.byteLength(r.externalId)) +
      lengthDelimitedSize(bodyLength) +
      (Number.isNaN(ms) ? 0 : timestampFieldSize(ms));
    lengths[i] = length;
    size += 1 + varintSize(length) + length;
  }
  for (let i = 0; i < deletes.length; i++) {
    const d = deletes[i] as DeletedRecord;
    checkIds(d, upserts.length + i);
    const length =
      lengthDelimitedSize(Buffer.byteLength(d.type)) + lengthDelimitedSize(Buffer.byteLength(d.externalId)) + 2;
    lengths[upserts.length + i] = length;
    size += 1 + varintSize(length) + length;
  }
  const syncedMs = target.syncedAt.getTime();
  size += timestampFieldSize(syncedMs);

  const out = Buffer.allocUnsafe(size);
  let at = writeStringField(out, 0, USER_ID, target.userId);
  at = writeStringField(out, at, CONNECTION_ID, target.connectionId);
  at = writeStringField(out, at, INTEGRATION, target.integration);
  for (let i = 0; i < upserts.length; i++) {
    const r = upserts[i] as NormalizedRecord;
    out[at++] = RECORDS;
    at = writeVarint(out, at, lengths[i] as number);
    at = writeStringField(out, at, TYPE, r.type);
    at = writeStringField(out, at, EXTERNAL_ID, r.externalId);
    at = writeStringField(out, at, DATA_JSON, json[i] as string, jsonLengths[i]);
    const ms = times[i] as number;
    if (!Number.isNaN(ms)) at = writeTimestampField(out, at, SOURCE_UPDATED_AT, ms);
  }
  for (let i = 0; i < deletes.length; i++) {
    const d = deletes[i] as DeletedRecord;
    out[at++] = RECORDS;
    at = writeVarint(out, at, lengths[upserts.length + i] as number);
    at = writeStringField(out, at, TYPE, d.type);
    at = writeStringField(out, at, EXTERNAL_ID, d.externalId);
    out[at++] = DELETED;
    out[at++] = 1;
  }
  at = writeTimestampField(out, at, SYNCED_AT, syncedMs);
  // allocUnsafe's buffer holds whatever memory it was given: a byte not written would send
  // other data of this process. The spec proves the sizes agree; this keeps a slip from leaking.
  if (at !== size) throw new AppError('internal', `The write request was ${at} bytes written of ${size}`);
  return new EncodedRequest(WriteRecordsRequestSchema, out);
}

/**
 * A record's type and external id must be strings (Buffer.byteLength would throw a bare
 * TypeError; toBinary used to coerce and the server refused the write): refused as
 * `invalid_record`, which the run quarantines (quarantine.ts) instead of failing — an upsert
 * by halving its batch, a tombstone before the write (so one never gets here from a run).
 */
function checkIds(r: DeletedRecord, index: number): void {
  if (typeof r.type !== 'string') throw invalidRecord(index, 'type', 'not a string');
  if (typeof r.externalId !== 'string') throw invalidRecord(index, 'externalId', 'not a string');
}

/**
 * An upsert's body as JSON; `undefined`, or one JSON cannot write (a BigInt, a cycle), is
 * `invalid_record` (the reason names no part of the body).
 */
function bodyJson(r: NormalizedRecord, index: number): string {
  let body: string | undefined;
  try {
    body = JSON.stringify(r.data);
  } catch {
    body = undefined;
  }
  if (typeof body !== 'string') throw invalidRecord(index, 'data', 'not serializable as JSON');
  return body;
}

function invalidRecord(index: number, field: string, problem: string): AppError {
  return new AppError('invalid_record', `Record ${index} of the write cannot be sent: its ${field} is ${problem}`, [
    { path: `records[${index}].${field}`, message: problem },
  ]);
}
