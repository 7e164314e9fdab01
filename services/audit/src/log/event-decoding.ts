import { fromBinary } from '@bufbuild/protobuf';
import { canonicalJson } from '@context-gateway/merkle-log';
import { type AuditEvent, AuditEventSchema, events } from '@context-gateway/proto';

import { eventJson, searchColumns } from './audit-event-codec.js';

/** Why a message can never be appended; it is dead-lettered with this code. */
interface DecodeFailure {
  index: number;
  code: 'malformed_request' | 'validation_failed';
  message: string;
}

/**
 * A batch of AUDIT messages decoded, validated and canonicalized — the part of an append
 * that needs no log state, so it can run on a worker thread. Column arrays (one slot per
 * input message, in order) rather than an object per event: they cross a thread boundary
 * by structured clone far more cheaply.
 */
export interface DecodedBatch {
  failures: DecodeFailure[];
  /** Empty string where the message failed. */
  eventIds: string[];
  /** RFC 8785 canonical JSON of the event's proto3 JSON form: what the leaf commits to. */
  canonicalEvents: string[];
  orgIds: (string | null)[];
  occurredAtMs: number[];
  applicationIds: (string | null)[];
  userIds: (string | null)[];
  integrations: (string | null)[];
  capabilities: (string | null)[];
  actions: string[];
  outcomes: string[];
}

/** Payloads packed into one transferable buffer: message i is bytes[offsets[i], offsets[i+1]). */
export interface PackedPayloads {
  bytes: Uint8Array;
  offsets: Uint32Array;
}

export function packPayloads(payloads: readonly Uint8Array[]): PackedPayloads {
  const offsets = new Uint32Array(payloads.length + 1);
  let end = 0;
  let i = 0;
  for (const payload of payloads) {
    end += payload.length;
    i += 1;
    offsets[i] = end;
  }
  const bytes = new Uint8Array(end);
  let at = 0;
  for (const payload of payloads) {
    bytes.set(payload, at);
    at += payload.length;
  }
  return { bytes, offsets };
}

export function decodePacked({ bytes, offsets }: PackedPayloads): DecodedBatch {
  const count = offsets.length - 1;
  const batch: DecodedBatch = {
    failures: [],
    eventIds: new Array<string>(count),
    canonicalEvents: new Array<string>(count),
    orgIds: new Array<string | null>(count),
    occurredAtMs: new Array<number>(count),
    applicationIds: new Array<string | null>(count),
    userIds: new Array<string | null>(count),
    integrations: new Array<string | null>(count),
    capabilities: new Array<string | null>(count),
    actions: new Array<string>(count),
    outcomes: new Array<string>(count),
  };
  for (let i = 0; i < count; i += 1) {
    const failed = () => {
      batch.eventIds[i] = '';
      batch.canonicalEvents[i] = '';
      batch.orgIds[i] =
        batch.applicationIds[i] =
        batch.userIds[i] =
        batch.integrations[i] =
        batch.capabilities[i] =
          null;
      batch.occurredAtMs[i] = 0;
      batch.actions[i] = batch.outcomes[i] = '';
    };
    let event: AuditEvent;
    try {
      event = fromBinary(AuditEventSchema, bytes.subarray(offsets[i], offsets[i + 1]));
    } catch {
      batch.failures.push({ index: i, code: 'malformed_request', message: 'not a valid AuditEvent' });
      failed();
      continue;
    }
    const problems = events.auditRecorded.validate?.(event) ?? [];
    if (problems.length > 0) {
      batch.failures.push({
        index: i,
        code: 'validation_failed',
        message: problems.map((p) => `${p.path} ${p.message}`).join('; '),
      });
      failed();
      continue;
    }
    const columns = searchColumns(event);
    batch.eventIds[i] = event.eventId;
    batch.canonicalEvents[i] = canonicalJson(eventJson(event));
    batch.orgIds[i] = columns.orgId;
    batch.occurredAtMs[i] = columns.occurredAt.getTime();
    batch.applicationIds[i] = columns.applicationId;
    batch.userIds[i] = columns.userId;
    batch.integrations[i] = columns.integration;
    batch.capabilities[i] = columns.capability;
    batch.actions[i] = columns.action;
    batch.outcomes[i] = columns.outcome;
  }
  return batch;
}
