import { toBinary } from '@bufbuild/protobuf';
import {
  type AuditEvent,
  AuditEventSchema,
  lengthDelimitedSize,
  type PolicyEvaluation,
  type Tag,
  varintSize,
  writeInt64Varint,
  writeStringField,
  writeStringFieldUnmeasured as writeString,
  writeTag,
  writeVarint,
  writeVarint64,
} from '@context-gateway/proto';

/**
 * Wire tags of AuditEvent (field number << 3 | wire type: 0 varint, 2 length-delimited),
 * in field number order, as toBinary writes them.
 */
const EVENT_ID = 0x0a; // string event_id = 1
const OCCURRED_AT = 0x12; // google.protobuf.Timestamp occurred_at = 2
const ORG_ID = 0x1a; // string org_id = 3
const APPLICATION_ID = 0x22; // string application_id = 4
const USER_ID = 0x2a; // string user_id = 5
const INTEGRATION = 0x32; // string integration = 6
const CAPABILITY = 0x3a; // string capability = 7
const RESOURCE = 0x42; // string resource = 8
const ACTION = 0x48; // AuditAction action = 9
const OUTCOME = 0x50; // AuditOutcome outcome = 10
const PHASE = 0x58; // AuditPhase phase = 11
const POLICY = 0x62; // PolicyEvaluation policy = 12
const ERROR_CODE = 0x6a; // string error_code = 13
const REQUEST_ID = 0x72; // string request_id = 14
const TRACE_ID = 0x7a; // string trace_id = 15
const LATENCY_MS: Tag = [0x80, 0x01]; // uint32 latency_ms = 16
const ACTOR_KIND: Tag = [0x88, 0x01]; // ActorKind actor_kind = 17
const ACTOR_ID: Tag = [0x92, 0x01]; // string actor_id = 18
const CONNECTION_ID: Tag = [0x9a, 0x01]; // string connection_id = 19
const INTENT_EVENT_ID: Tag = [0xa2, 0x01]; // string intent_event_id = 20
const OPERATION: Tag = [0xaa, 0x01]; // string operation = 21
const APPROVAL_ID: Tag = [0xb2, 0x01]; // string approval_id = 22
const MCP_VIRTUAL_SERVER: Tag = [0xba, 0x01]; // string mcp_virtual_server = 23
/** Timestamp's and PolicyEvaluation's fields. */
const SECONDS = 0x08; // int64 seconds = 1
const NANOS = 0x10; // int32 nanos = 2
const DECIDED_BY = 0x0a; // string decided_by = 1
const REASON = 0x12; // string reason = 2
const MATCHED_RULE_IDS = 0x1a; // repeated string matched_rule_ids = 3
/** AuditEventBatch's fields. */
const BATCH_ID = 0x0a; // string batch_id = 1
const EVENTS = 0x12; // repeated AuditEvent events = 2

/**
 * An event is written into this scratch buffer (grown when one does not fit), then copied
 * out at its exact length: one allocation per event. Events are a few hundred bytes.
 */
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * An audit event's protobuf bytes, written by hand: byte for byte what
 * `toBinary(AuditEventSchema, event)` writes (audit-event-bytes.spec.ts compares the two
 * over every field, as a property). The generic encoder walked the message's descriptor for
 * every field of every event and grew its writer chunk by chunk: about 5 % of the gateway's
 * CPU under `pnpm bench:query`, where each query records one event. proto3 defaults (empty
 * strings, zero numbers and enums, no policy or time) are left out, as toBinary does.
 */
export function encodeAuditEvent(event: AuditEvent): Buffer {
  // Fields this encoder does not know (a message decoded from a newer peer): the generic one.
  if (event.$unknown?.length || event.policy?.$unknown?.length || event.occurredAt?.$unknown?.length)
    return Buffer.from(toBinary(AuditEventSchema, event));
  const room = roomFor(event);
  if (scratch.length < room) scratch = Buffer.allocUnsafe(Math.max(room, scratch.length * 2));
  const out = scratch;
  let at = writeString(out, 0, EVENT_ID, event.eventId);
  if (event.occurredAt) {
    const { seconds, nanos } = event.occurredAt;
    // A Timestamp takes at most 22 bytes, so its length is one byte, written once it is known.
    out[at] = OCCURRED_AT;
    const start = at + 2;
    let end = start;
    if (seconds !== 0n) {
      out[end++] = SECONDS;
      end = writeVarint64(out, end, BigInt.asUintN(64, seconds));
    }
    if (nanos !== 0) {
      out[end++] = NANOS;
      end = writeInt64Varint(out, end, nanos);
    }
    out[at + 1] = end - start;
    at = end;
  }
  at = writeString(out, at, ORG_ID, event.orgId);
  at = writeString(out, at, APPLICATION_ID, event.applicationId);
  at = writeString(out, at, USER_ID, event.userId);
  at = writeString(out, at, INTEGRATION, event.integration);
  at = writeString(out, at, CAPABILITY, event.capability);
  at = writeString(out, at, RESOURCE, event.resource);
  at = writeEnum(out, at, ACTION, event.action);
  at = writeEnum(out, at, OUTCOME, event.outcome);
  at = writeEnum(out, at, PHASE, event.phase);
  if (event.policy) at = writePolicy(out, at, event.policy);
  at = writeString(out, at, ERROR_CODE, event.errorCode);
  at = writeString(out, at, REQUEST_ID, event.requestId);
  at = writeString(out, at, TRACE_ID, event.traceId);
  if (event.latencyMs !== 0) at = writeVarint(out, writeTag(out, at, LATENCY_MS), event.latencyMs);
  at = writeEnum(out, at, ACTOR_KIND, event.actorKind);
  at = writeString(out, at, ACTOR_ID, event.actorId);
  at = writeString(out, at, CONNECTION_ID, event.connectionId);
  at = writeString(out, at, INTENT_EVENT_ID, event.intentEventId);
  at = writeString(out, at, OPERATION, event.operation);
  at = writeString(out, at, APPROVAL_ID, event.approvalId);
  at = writeString(out, at, MCP_VIRTUAL_SERVER, event.mcpVirtualServer);
  return Buffer.from(out.subarray(0, at));
}

/**
 * An AuditEventBatch's bytes from its id and its events' bytes (encodeAuditEvent's, in
 * batch order): what `toBinary(AuditEventBatchSchema, batch)` writes for the same batch.
 */
export function encodeAuditBatch(batchId: string, events: readonly Uint8Array[]): Buffer {
  const idLength = Buffer.byteLength(batchId);
  let size = lengthDelimitedSize(idLength);
  for (const bytes of events) size += 1 + varintSize(bytes.length) + bytes.length;
  const out = Buffer.allocUnsafe(size);
  let at = writeStringField(out, 0, BATCH_ID, batchId, idLength);
  for (const bytes of events) {
    out[at++] = EVENTS;
    at = writeVarint(out, at, bytes.length);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

/** Bytes enough for the event: every string at 3 bytes per UTF-16 unit, tags, lengths and numbers. */
function roomFor(event: AuditEvent): number {
  // Summed field by field, not over an array of them: no array per event.
  const units =
    event.eventId.length +
    event.orgId.length +
    event.applicationId.length +
    event.userId.length +
    event.integration.length +
    event.capability.length +
    event.resource.length +
    event.errorCode.length +
    event.requestId.length +
    event.traceId.length +
    event.actorId.length +
    event.connectionId.length +
    event.intentEventId.length +
    event.operation.length +
    event.approvalId.length +
    event.mcpVirtualServer.length;
  let room = 256 + units * 3;
  const policy = event.policy;
  if (policy) {
    room += 20 + (policy.decidedBy.length + policy.reason.length) * 3;
    for (const id of policy.matchedRuleIds) room += 12 + id.length * 3;
  }
  return room;
}

function writePolicy(out: Buffer, at: number, policy: PolicyEvaluation): number {
  // Its length comes first: the strings' UTF-8 lengths decide it.
  let size = stringFieldSize(policy.decidedBy) + stringFieldSize(policy.reason);
  for (const id of policy.matchedRuleIds) size += stringFieldSize(id) || 2; // an empty element is sent too
  out[at] = POLICY;
  at = writeVarint(out, at + 1, size);
  at = writeString(out, at, DECIDED_BY, policy.decidedBy);
  at = writeString(out, at, REASON, policy.reason);
  for (const id of policy.matchedRuleIds) at = writeString(out, at, MATCHED_RULE_IDS, id, true);
  return at;
}

/** A one-byte-tag string field's size on the wire; 0 for an empty string (left out). */
function stringFieldSize(value: string): number {
  return lengthDelimitedSize(Buffer.byteLength(value));
}

function writeEnum(out: Buffer, at: number, tag: Tag, value: number): number {
  return value === 0 ? at : writeInt64Varint(out, writeTag(out, at, tag), value);
}
