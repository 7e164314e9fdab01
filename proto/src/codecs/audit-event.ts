import type { UnknownField } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

import type { AuditEvent, AuditEventBatch, PolicyEvaluation } from '../gen/contextgateway/audit/v1/audit_pb.js';
import { expectNestedEnd, expectWireType, nestedEnd, readString, readTimestamp, skipUnknown } from './wire-read.js';

/**
 * The AUDIT stream's payloads by hand, for the audit service's decoder thread, which decodes
 * every event the gateway records: protobuf-es walks the descriptor for each field (a read
 * context, a Map lookup and a closure per field), about a quarter of that thread's CPU under
 * `pnpm bench:audit`. audit-event.spec.ts proves these equal to fromBinary on anything it reads,
 * and never accepting what it refuses. (The gateway encodes them by hand too,
 * services/gateway/src/audit/audit-event-bytes.ts.)
 *
 * Stricter in two ways, as query-records.ts (StricterThanFromBinaryError, wire-read.ts): a
 * known field with the wrong wire type is refused (fromBinary reads it as the declared type,
 * turning garbage into some value), and so is a nested message whose fields run past its
 * length: the event is dead-lettered as malformed instead of appended as something its
 * publisher did not send.
 */

const EVENT_TYPE = 'contextgateway.audit.v1.AuditEvent';
const BATCH_TYPE = 'contextgateway.audit.v1.AuditEventBatch';
const POLICY_TYPE = 'contextgateway.audit.v1.PolicyEvaluation';

/**
 * An AuditEvent from its wire bytes: what `fromBinary(AuditEventSchema, bytes)` returns,
 * unknown fields kept in `$unknown` the same way; throws on anything fromBinary refuses (a
 * truncated field, a bad varint or tag, invalid UTF-8) and on the stricter checks above.
 */
export function decodeAuditEvent(bytes: Uint8Array): AuditEvent {
  // No check that the reader ended at the end: BinaryReader throws on any read past it.
  return readEventFields(new BinaryReader(bytes), bytes.length, 1);
}

/** An AuditEventBatch from its wire bytes, as `fromBinary(AuditEventBatchSchema, bytes)` returns it (see decodeAuditEvent). */
export function decodeAuditEventBatch(bytes: Uint8Array): AuditEventBatch {
  const batch: AuditEventBatch = { $typeName: BATCH_TYPE, batchId: '', events: [] };
  const reader = new BinaryReader(bytes);
  let unknown: UnknownField[] | undefined;
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        batch.batchId = readString(reader, fieldNo, wireType);
        break;
      case 2: {
        expectWireType(fieldNo, wireType, WireType.LengthDelimited);
        const end = nestedEnd(reader);
        batch.events.push(readEventFields(reader, end, 2));
        expectNestedEnd(reader, end, 'an event');
        break;
      }
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, 1, unknown);
    }
  }
  if (unknown) batch.$unknown = unknown;
  return batch;
}

/** An AuditEvent's fields from the reader's position to `end`; `depth`: the event's nesting level. */
function readEventFields(reader: BinaryReader, end: number, depth: number): AuditEvent {
  const event: AuditEvent = {
    $typeName: EVENT_TYPE,
    eventId: '',
    orgId: '',
    applicationId: '',
    userId: '',
    integration: '',
    capability: '',
    resource: '',
    action: 0,
    outcome: 0,
    phase: 0,
    errorCode: '',
    requestId: '',
    traceId: '',
    latencyMs: 0,
    actorKind: 0,
    actorId: '',
    connectionId: '',
    intentEventId: '',
    operation: '',
    approvalId: '',
    mcpVirtualServer: '',
  };
  let unknown: UnknownField[] | undefined;
  while (reader.pos < end) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        event.eventId = readString(reader, fieldNo, wireType);
        break;
      case 2:
        expectWireType(fieldNo, wireType, WireType.LengthDelimited);
        // A message field sent twice merges into the one before, as fromBinary does.
        event.occurredAt = readTimestamp(reader, event.occurredAt, 'occurred_at', depth + 1);
        break;
      case 3:
        event.orgId = readString(reader, fieldNo, wireType);
        break;
      case 4:
        event.applicationId = readString(reader, fieldNo, wireType);
        break;
      case 5:
        event.userId = readString(reader, fieldNo, wireType);
        break;
      case 6:
        event.integration = readString(reader, fieldNo, wireType);
        break;
      case 7:
        event.capability = readString(reader, fieldNo, wireType);
        break;
      case 8:
        event.resource = readString(reader, fieldNo, wireType);
        break;
      case 9:
        event.action = readEnum(reader, fieldNo, wireType);
        break;
      case 10:
        event.outcome = readEnum(reader, fieldNo, wireType);
        break;
      case 11:
        event.phase = readEnum(reader, fieldNo, wireType);
        break;
      case 12:
        expectWireType(fieldNo, wireType, WireType.LengthDelimited);
        event.policy = readPolicy(reader, event.policy, depth + 1);
        break;
      case 13:
        event.errorCode = readString(reader, fieldNo, wireType);
        break;
      case 14:
        event.requestId = readString(reader, fieldNo, wireType);
        break;
      case 15:
        event.traceId = readString(reader, fieldNo, wireType);
        break;
      case 16:
        expectWireType(fieldNo, wireType, WireType.Varint);
        event.latencyMs = reader.uint32();
        break;
      case 17:
        event.actorKind = readEnum(reader, fieldNo, wireType);
        break;
      case 18:
        event.actorId = readString(reader, fieldNo, wireType);
        break;
      case 19:
        event.connectionId = readString(reader, fieldNo, wireType);
        break;
      case 20:
        event.intentEventId = readString(reader, fieldNo, wireType);
        break;
      case 21:
        event.operation = readString(reader, fieldNo, wireType);
        break;
      case 22:
        event.approvalId = readString(reader, fieldNo, wireType);
        break;
      case 23:
        event.mcpVirtualServer = readString(reader, fieldNo, wireType);
        break;
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, depth, unknown);
    }
  }
  if (unknown) event.$unknown = unknown;
  return event;
}

/** A proto3 (open) enum: any int32, as fromBinary keeps it, known to the enum or not. */
function readEnum(reader: BinaryReader, fieldNo: number, wireType: WireType): number {
  expectWireType(fieldNo, wireType, WireType.Varint);
  return reader.int32();
}

/** A PolicyEvaluation field's body (after its tag), merged into `into` when given. */
function readPolicy(reader: BinaryReader, into: PolicyEvaluation | undefined, depth: number): PolicyEvaluation {
  const policy: PolicyEvaluation = into ?? { $typeName: POLICY_TYPE, decidedBy: '', reason: '', matchedRuleIds: [] };
  const end = nestedEnd(reader);
  let unknown = policy.$unknown;
  while (reader.pos < end) {
    const [fieldNo, wireType] = reader.tag();
    switch (fieldNo) {
      case 1:
        policy.decidedBy = readString(reader, fieldNo, wireType);
        break;
      case 2:
        policy.reason = readString(reader, fieldNo, wireType);
        break;
      case 3:
        policy.matchedRuleIds.push(readString(reader, fieldNo, wireType));
        break;
      default:
        unknown = skipUnknown(reader, fieldNo, wireType, depth, unknown);
    }
  }
  expectNestedEnd(reader, end, 'policy');
  if (unknown) policy.$unknown = unknown;
  return policy;
}
