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
  const subject = auditSubject(request);
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) (subject as Record<string, unknown>)[key] = value;
  }
}
