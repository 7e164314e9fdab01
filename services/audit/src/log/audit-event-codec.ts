import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { decodeEntryBytes } from '@context-gateway/merkle-log';
import { AuditAction, type AuditEvent, AuditEventSchema, AuditOutcome } from '@context-gateway/proto';

/** Each value's lower-case name, made once per enum rather than once per event; any other number is `unspecified`. */
function lowerCaseNames(names: Record<string, string | number>): (value: number) => string {
  const known = new Map<number, string>();
  for (const [name, value] of Object.entries(names))
    if (typeof value === 'number') known.set(value, name.toLowerCase());
  return (value) => known.get(value) ?? 'unspecified';
}

/** `AUDIT_ACTION_DATA_QUERY` → `data_query`: the names the search columns and the HTTP API use. */
export const actionName: (action: AuditAction) => string = lowerCaseNames(AuditAction);

export const outcomeName: (outcome: AuditOutcome) => string = lowerCaseNames(AuditOutcome);

/** The event as it is hashed into the log: proto3 JSON (stable field names, enums by name). */
export function eventJson(event: AuditEvent): JsonValue {
  return toJson(AuditEventSchema, event);
}

/** The searchable copy of an event's fields, stored beside the hashed entry. */
export interface SearchColumns {
  orgId: string | null;
  occurredAt: Date;
  applicationId: string | null;
  userId: string | null;
  integration: string | null;
  capability: string | null;
  action: string;
  outcome: string;
}

const orNull = (value: string): string | null => (value === '' ? null : value);

/**
 * Throws for an event without `occurredAt`: the AUDIT contract's validation requires it, so
 * only an entry not written by this service (or edited in storage) can lack it.
 */
export function searchColumns(event: AuditEvent): SearchColumns {
  if (!event.occurredAt)
    throw new AppError('validation_failed', 'The audit event has no occurredAt', [
      { path: 'occurredAt', message: 'must be set' },
    ]);
  return {
    orgId: orNull(event.orgId),
    occurredAt: timestampDate(event.occurredAt),
    applicationId: orNull(event.applicationId),
    userId: orNull(event.userId),
    integration: orNull(event.integration),
    capability: orNull(event.capability),
    action: actionName(event.action),
    outcome: outcomeName(event.outcome),
  };
}

/** The event back from the stored canonical entry — what is served is what was hashed. */
export function eventFromEntry(entry: Uint8Array): AuditEvent | undefined {
  const decoded = decodeEntryBytes(entry);
  if (!decoded) return undefined;
  try {
    return fromJson(AuditEventSchema, decoded.event as never);
  } catch {
    return undefined;
  }
}
