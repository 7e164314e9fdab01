import type { AuditRecord } from './audit-recorder.js';

const SUBJECT = Symbol('cg:audit-subject');

/** The parts of an event that only the request knows: who called, for which org/user/app. */
export type AuditSubject = Omit<AuditRecord, 'action' | 'outcome' | 'latencyMs' | 'operation'>;

/**
 * The audit subject attached to one HTTP request. Guards fill in the caller (org, actor),
 * handlers add what they learn while running (user, integration, connection, policy);
 * the route interceptor reads it when it records the intent and the outcome.
 */
export function auditSubject(request: object): AuditSubject {
  const holder = request as { [SUBJECT]?: AuditSubject };
  holder[SUBJECT] ??= {};
  return holder[SUBJECT];
}

/** Adds fields to the request's audit subject (undefined values leave a field as it was). */
export function setAuditSubject(request: object, fields: AuditSubject): void {
  const subject = auditSubject(request) as Record<string, unknown>;
  // for-in over the caller's literal, not Object.entries: no array of pairs per call (a
  // records query sets its subject four times). Own keys only: the fields are plain literals.
  for (const key in fields) {
    const value = (fields as Record<string, unknown>)[key];
    if (value !== undefined) subject[key] = value;
  }
}

const HANDLED_FAILURE = Symbol('cg:audit-handled-failure');

/**
 * A route that answers its own failures (an HTML page, a redirect to confirm with a
 * passkey) instead of throwing tells the audit here what failed: its event is then denied or
 * error with this code, never allowed.
 */
export function setHandledFailure(request: object, error: unknown): void {
  (request as { [HANDLED_FAILURE]?: unknown })[HANDLED_FAILURE] = error;
}

/** The failure a route answered itself, if any. */
export function handledFailure(request: object): unknown {
  return (request as { [HANDLED_FAILURE]?: unknown })[HANDLED_FAILURE];
}
