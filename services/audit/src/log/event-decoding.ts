import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import { type CopyColumnType, CopyFieldsEncoder } from '@context-gateway/database';
import { type EventDescriptor, events } from '@context-gateway/proto';

import { searchColumns } from './audit-event-codec.js';
import { canonicalProtoJson } from './canonical-proto-json.js';

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
  /**
   * UTF-8 of the RFC 8785 canonical JSON of each event's proto3 JSON form (what the leaf
   * commits to), one after the other: event i is canonicalEvents[canonicalEnds[i-1] ?? 0,
   * canonicalEnds[i]). Bytes in one buffer rather than a string per event: it moves to the
   * writer's thread without a copy, and the writer puts the bytes into the leaf as they are.
   */
  canonicalEvents: Uint8Array;
  canonicalEnds: number[];
  occurredAtMs: number[];
  /**
   * Each event's SEARCH_COPY_COLUMNS, encoded for the log's binary COPY (CopyFieldsEncoder):
   * event i's are searchFields[searchFieldEnds[i-1] ?? 0, searchFieldEnds[i]). Encoded here
   * so the writer's thread only copies them into its COPY.
   */
  searchFields: Uint8Array;
  searchFieldEnds: number[];
}

/** The audit_entries columns copied from the event (SearchColumns), in the order the decoder encodes them. */
export const SEARCH_COPY_COLUMNS: readonly { name: string; type: CopyColumnType }[] = [
  { name: 'event_id', type: 'uuid' },
  { name: 'org_id', type: 'uuid' },
  { name: 'occurred_at', type: 'timestamptz' },
  { name: 'application_id', type: 'text' },
  { name: 'user_id', type: 'text' },
  { name: 'integration', type: 'text' },
  { name: 'capability', type: 'text' },
  { name: 'action', type: 'text' },
  { name: 'outcome', type: 'text' },
];
const SEARCH_COPY_TYPES = SEARCH_COPY_COLUMNS.map((c) => c.type);
/** canonicalJson(eventJson(event)): what the leaf commits to. */
const canonicalEvent = canonicalProtoJson(events.auditRecorded.message);

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
    canonicalEvents: new Uint8Array(0),
    canonicalEnds: [],
    occurredAtMs: [],
    searchFields: new Uint8Array(0),
    searchFieldEnds: [],
  };
}

/** Event i's canonical JSON bytes in `batch`. */
export function canonicalEventBytes(batch: DecodedBatch, i: number): Uint8Array | undefined {
  return range(batch.canonicalEvents, batch.canonicalEnds, i);
}

/** Event i's encoded search columns in `batch`. */
export function searchFieldBytes(batch: DecodedBatch, i: number): Uint8Array | undefined {
  return range(batch.searchFields, batch.searchFieldEnds, i);
}

function range(bytes: Uint8Array, ends: readonly number[], i: number): Uint8Array | undefined {
  const end = ends[i];
  return end === undefined ? undefined : bytes.subarray(ends[i - 1] ?? 0, end);
}

/**
 * Texts as UTF-8, one after the other, written as they come into a buffer of its own
 * (transferable) that grows: no text outlives its add(), so a batch's thousands of them
 * never pile up on the decoder's heap for its garbage collector to copy again and again.
 */
export class Utf8Column {
  private out: Buffer;
  private at = 0;
  readonly ends: number[] = [];

  constructor(expectedBytes: number) {
    this.out = Buffer.from(new ArrayBuffer(Math.max(expectedBytes, 64)));
  }

  add(text: string): void {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8: with that much room nothing is cut off.
    if (this.out.length - this.at < text.length * 3) {
      const grown = Buffer.from(new ArrayBuffer(Math.max(this.out.length * 2, this.at + text.length * 3)));
      this.out.copy(grown, 0, 0, this.at);
      this.out = grown;
    }
    this.at += this.out.write(text, this.at, 'utf8');
    this.ends.push(this.at);
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.out.buffer, 0, this.at);
  }
}

/** Rough output sizes per payload byte (the canonical JSON is about twice the protobuf), to allocate once. */
const CANONICAL_PER_PAYLOAD_BYTE = 2.5;
const SEARCH_FIELDS_PER_PAYLOAD_BYTE = 0.6;

export function decodePacked({ bytes, offsets, kinds }: PackedPayloads): DecodedBatch {
  const batch = emptyBatch();
  const canonical = new Utf8Column(bytes.length * CANONICAL_PER_PAYLOAD_BYTE);
  const search = new CopyFieldsEncoder(SEARCH_COPY_TYPES, bytes.length * SEARCH_FIELDS_PER_PAYLOAD_BYTE);
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
      canonical.add(canonicalEvent(event));
      batch.occurredAtMs.push(columns.occurredAt.getTime());
      search.add([
        event.eventId,
        columns.orgId,
        columns.occurredAt,
        columns.applicationId,
        columns.userId,
        columns.integration,
        columns.capability,
        columns.action,
        columns.outcome,
      ]);
    }
  }
  batch.canonicalEvents = canonical.bytes();
  batch.canonicalEnds = canonical.ends;
  const encoded = search.finish();
  batch.searchFields = encoded.bytes;
  batch.searchFieldEnds = encoded.ends;
  return batch;
}

/**
 * One payload decoded as the descriptor's message (by its hand decoder when it has one,
 * proto/src/codecs: fromBinary's result, a quarter of this thread's CPU less) and checked by
 * its validation; or why not.
 */
function decodeChecked<M extends DescMessage>(
  descriptor: EventDescriptor<M>,
  data: Uint8Array,
): { message: MessageShape<M> } | { failure: Omit<DecodeFailure, 'index'> } {
  let message: MessageShape<M>;
  try {
    message = descriptor.decode ? descriptor.decode(data) : fromBinary(descriptor.message, data);
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
