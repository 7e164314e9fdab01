import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import { canonicalJson } from '@context-gateway/merkle-log';
import { type EventDescriptor, events } from '@context-gateway/proto';

import { eventJson, searchColumns } from './audit-event-codec.js';

/** Why a message can never be appended; it is dead-lettered with this code. */
interface DecodeFailure {
  /** The message's index in the batch. */
  index: number;
  code: 'malformed_request' | 'validation_failed';
  message: string;
}

/**
 * A batch of AUDIT messages decoded, validated and canonicalized — the part of an append
 * that needs no log state, so it can run on a worker thread. Column arrays (one slot per
 * event, in order: a plain message is one event, an AuditEventBatch message its events;
 * a message that failed has none) rather than an object per event: they cross a thread
 * boundary by structured clone far more cheaply.
 */
export interface DecodedBatch {
  failures: DecodeFailure[];
  /** The index of the message each event came in. */
  messageIndex: number[];
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

/** What an AUDIT message's payload is: one AuditEvent, or an AuditEventBatch (header cg-audit-batch). */
export const PayloadKind = { Event: 0, Batch: 1 } as const;
export type PayloadKind = (typeof PayloadKind)[keyof typeof PayloadKind];

/** Payloads packed into one transferable buffer: message i is bytes[offsets[i], offsets[i+1]), of kinds[i]. */
export interface PackedPayloads {
  bytes: Uint8Array;
  offsets: Uint32Array;
  kinds: Uint8Array;
}

export interface Payload {
  data: Uint8Array;
  kind: PayloadKind;
}

export function packPayloads(payloads: readonly Payload[]): PackedPayloads {
  const offsets = new Uint32Array(payloads.length + 1);
  const kinds = new Uint8Array(payloads.length);
  let end = 0;
  payloads.forEach((payload, i) => {
    end += payload.data.length;
    offsets[i + 1] = end;
    kinds[i] = payload.kind;
  });
  const bytes = new Uint8Array(end);
  let at = 0;
  for (const payload of payloads) {
    bytes.set(payload.data, at);
    at += payload.data.length;
  }
  return { bytes, offsets, kinds };
}

export function emptyBatch(): DecodedBatch {
  return {
    failures: [],
    messageIndex: [],
    eventIds: [],
    canonicalEvents: [],
    orgIds: [],
    occurredAtMs: [],
    applicationIds: [],
    userIds: [],
    integrations: [],
    capabilities: [],
    actions: [],
    outcomes: [],
  };
}

export function decodePacked({ bytes, offsets, kinds }: PackedPayloads): DecodedBatch {
  const batch = emptyBatch();
  for (let i = 0; i < kinds.length; i += 1) {
    const data = bytes.subarray(offsets[i], offsets[i + 1]);
    const decoded =
      kinds[i] === PayloadKind.Batch
        ? decodeChecked(events.auditRecordedBatch, data)
        : decodeChecked(events.auditRecorded, data);
    if ('failure' in decoded) {
      batch.failures.push({ index: i, ...decoded.failure });
      continue;
    }
    const list = 'events' in decoded.message ? decoded.message.events : [decoded.message];
    for (const event of list) {
      const columns = searchColumns(event);
      batch.messageIndex.push(i);
      batch.eventIds.push(event.eventId);
      batch.canonicalEvents.push(canonicalJson(eventJson(event)));
      batch.orgIds.push(columns.orgId);
      batch.occurredAtMs.push(columns.occurredAt.getTime());
      batch.applicationIds.push(columns.applicationId);
      batch.userIds.push(columns.userId);
      batch.integrations.push(columns.integration);
      batch.capabilities.push(columns.capability);
      batch.actions.push(columns.action);
      batch.outcomes.push(columns.outcome);
    }
  }
  return batch;
}

/** One payload decoded as the descriptor's message and checked by its validation; or why not. */
function decodeChecked<M extends DescMessage>(
  descriptor: EventDescriptor<M>,
  data: Uint8Array,
): { message: MessageShape<M> } | { failure: Omit<DecodeFailure, 'index'> } {
  let message: MessageShape<M>;
  try {
    message = fromBinary(descriptor.message, data);
  } catch {
    const name = descriptor.message.typeName.split('.').pop() ?? descriptor.message.typeName;
    return { failure: { code: 'malformed_request', message: `not a valid ${name}` } };
  }
  const problems = descriptor.validate?.(message) ?? [];
  if (problems.length === 0) return { message };
  return {
    failure: { code: 'validation_failed', message: problems.map((p) => `${p.path} ${p.message}`).join('; ') },
  };
}
