import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';

import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  type AuditEventBatch,
  AuditEventBatchSchema,
  AuditOutcome,
  AuditPhase,
  AuthenticateAuditorRequestSchema,
  AuthenticateAuditorResponseSchema,
  CreateAuditorRequestSchema,
  CreateAuditorResponseSchema,
  GetCheckpointRequestSchema,
  GetCheckpointResponseSchema,
  GetConsistencyProofRequestSchema,
  GetConsistencyProofResponseSchema,
  GetEntryRequestSchema,
  GetEntryResponseSchema,
  RevokeAuditorRequestSchema,
  RevokeAuditorResponseSchema,
  SearchEntriesRequestSchema,
  SearchEntriesResponseSchema,
} from '../gen/contextgateway/audit/v1/audit_pb.js';
import { defineRpc } from './descriptors.js';
import { brandFrozen, type Validated, type ValidationResult } from './validated.js';
import { check, isLowerCaseUuid, type ValidationProblem } from './validation.js';

const P = 'audit.v1';

/**
 * Free-text fields' bounds: identifiers and names, and the longer resource, policy reason
 * and matched rule ids. The audit service stores these fields as text (no column limit):
 * the bounds are what keeps one event from being megabytes. A rule id joins a source id
 * and a capability (`app:<app id>:capability:<up to 200 characters>`), too close to
 * SHORT_TEXT to bound it there; 64 of them at LONGER_TEXT stay under 64 K characters.
 */
const SHORT_TEXT = 256;
const LONGER_TEXT = 1024;
const MAX_MATCHED_RULES = 64;

const optionalUuid = (value: string, path: string): ValidationProblem[] =>
  value === '' ? [] : check.uuid(value, path);
/** Free-text identifiers (app ids, capabilities, ...): bounded, so one event cannot be megabytes. */
const short = (value: string, path: string): ValidationProblem[] => check.maxLength(value, SHORT_TEXT, path);

type TextField = { [K in keyof AuditEvent]-?: AuditEvent[K] extends string ? K : never }[keyof AuditEvent];
/** The event's own free-text fields and their bounds: one list for both checks below. */
const BOUNDED_TEXT: readonly (readonly [TextField, number])[] = [
  ['applicationId', SHORT_TEXT],
  ['userId', SHORT_TEXT],
  ['integration', SHORT_TEXT],
  ['capability', SHORT_TEXT],
  ['resource', LONGER_TEXT],
  ['errorCode', SHORT_TEXT],
  ['requestId', SHORT_TEXT],
  ['traceId', SHORT_TEXT],
  ['actorId', SHORT_TEXT],
  ['connectionId', SHORT_TEXT],
  ['operation', SHORT_TEXT],
  ['approvalId', SHORT_TEXT],
  ['mcpVirtualServer', SHORT_TEXT],
];

/**
 * What every audit event must satisfy before it is published (the publisher refuses it
 * at the source) and again when the audit service consumes it (dead-lettered otherwise).
 * Every event is checked twice on its way (the gateway, then the audit service's decoder),
 * tens of thousands a second, and almost all are valid: a quick all-passes test comes first,
 * and the problems are listed (auditEventProblems) only for an event it does not pass.
 */
export function validateAuditEvent(e: AuditEvent): ValidationProblem[] {
  return passesAuditEventChecks(e) ? [] : auditEventProblems(e);
}

/**
 * True exactly when auditEventProblems(e) lists nothing: the same checks, as one expression,
 * nothing allocated (a property test in audit.spec.ts holds the two together).
 */
export function passesAuditEventChecks(e: AuditEvent): boolean {
  return (
    isLowerCaseUuid(e.eventId) &&
    (e.orgId === '' || isLowerCaseUuid(e.orgId)) &&
    (e.intentEventId === '' || isLowerCaseUuid(e.intentEventId)) &&
    e.occurredAt !== undefined &&
    encodableTime(e.occurredAt) &&
    !Number.isNaN(timestampDate(e.occurredAt).getTime()) &&
    e.action !== AuditAction.UNSPECIFIED &&
    e.outcome !== AuditOutcome.UNSPECIFIED &&
    e.phase !== AuditPhase.UNSPECIFIED &&
    e.actorKind !== ActorKind.UNSPECIFIED &&
    isInt32(e.action) &&
    isInt32(e.outcome) &&
    isInt32(e.phase) &&
    isInt32(e.actorKind) &&
    isUint32(e.latencyMs) &&
    textWithinBounds(e) &&
    (e.policy === undefined ||
      (e.policy.decidedBy.length <= SHORT_TEXT &&
        e.policy.reason.length <= LONGER_TEXT &&
        e.policy.matchedRuleIds.length <= MAX_MATCHED_RULES &&
        allAtMost(e.policy.matchedRuleIds, LONGER_TEXT)))
  );
}

/**
 * Numbers the wire can carry as they are. toBinary refuses the others (a negative or
 * fractional uint32, an int32 past its range, NaN); the gateway's hand encoder
 * (audit-event-bytes.ts) writes whatever it is given, so a validated event must not hold them.
 */
const isInt32 = (n: number): boolean => Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff;
const isUint32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** An int64 `seconds` (a bigint, as the generated type says) and `nanos` within one second. */
function encodableTime(t: { seconds: bigint; nanos: number }): boolean {
  return (
    typeof t.seconds === 'bigint' &&
    t.seconds >= INT64_MIN &&
    t.seconds <= INT64_MAX &&
    Number.isInteger(t.nanos) &&
    t.nanos >= 0 &&
    t.nanos <= 999_999_999
  );
}

const int32Enum = (value: number, path: string): ValidationProblem[] =>
  value === 0 ? check.enumSet(value, path) : isInt32(value) ? [] : [{ path, message: 'must be an int32' }];

function textWithinBounds(e: AuditEvent): boolean {
  for (const [field, max] of BOUNDED_TEXT) if (e[field].length > max) return false;
  return true;
}

function allAtMost(values: readonly string[], max: number): boolean {
  for (const value of values) if (value.length > max) return false;
  return true;
}

/**
 * Every problem of an audit event, by path (empty for a valid one). A check added here goes
 * into passesAuditEventChecks too, or validateAuditEvent never runs it on an event the
 * quick pass lets through.
 */
export function auditEventProblems(e: AuditEvent): ValidationProblem[] {
  return [
    ...check.uuid(e.eventId, 'eventId'),
    ...optionalUuid(e.orgId, 'orgId'),
    ...optionalUuid(e.intentEventId, 'intentEventId'),
    ...(e.occurredAt === undefined
      ? [{ path: 'occurredAt', message: 'must be set' }]
      : !encodableTime(e.occurredAt)
        ? [{ path: 'occurredAt', message: 'must have int64 seconds and integer nanos from 0 to 999999999' }]
        : Number.isNaN(timestampDate(e.occurredAt).getTime())
          ? [{ path: 'occurredAt', message: 'must be a time a Date holds' }]
          : []),
    ...int32Enum(e.action, 'action'),
    ...int32Enum(e.outcome, 'outcome'),
    ...int32Enum(e.phase, 'phase'),
    ...int32Enum(e.actorKind, 'actorKind'),
    ...(isUint32(e.latencyMs) ? [] : [{ path: 'latencyMs', message: 'must be an integer from 0 to 4294967295' }]),
    ...BOUNDED_TEXT.flatMap(([field, max]) => check.maxLength(e[field], max, field)),
    ...short(e.policy?.decidedBy ?? '', 'policy.decidedBy'),
    ...check.maxLength(e.policy?.reason ?? '', LONGER_TEXT, 'policy.reason'),
    ...((e.policy?.matchedRuleIds.length ?? 0) > MAX_MATCHED_RULES
      ? [{ path: 'policy.matchedRuleIds', message: `at most ${MAX_MATCHED_RULES}` }]
      : []),
    ...(e.policy?.matchedRuleIds ?? []).flatMap((id, i) =>
      check.maxLength(id, LONGER_TEXT, `policy.matchedRuleIds.${i}`),
    ),
  ];
}

/** The most events one AUDIT batch message may carry (the gateway's group commit flushes at this). */
export const MAX_AUDIT_BATCH_EVENTS = 256;
/** NATS header marking an AUDIT message whose payload is an AuditEventBatch rather than one AuditEvent. */
export const AUDIT_BATCH_HEADER = 'cg-audit-batch';

/**
 * A batch: an id, 1 to MAX_AUDIT_BATCH_EVENTS events each valid on its own, no event id twice.
 * (auditEventBatchOf makes a batch of events validated already, and checks the rest.)
 */
export function validateAuditEventBatch(b: AuditEventBatch): ValidationProblem[] {
  const problems: ValidationProblem[] = [...check.uuid(b.batchId, 'batchId')];
  if (b.events.length === 0 || b.events.length > MAX_AUDIT_BATCH_EVENTS) {
    problems.push({ path: 'events', message: `must hold 1 to ${MAX_AUDIT_BATCH_EVENTS} events` });
    return problems;
  }
  const seen = new Set<string>();
  b.events.forEach((event, i) => {
    for (const p of validateAuditEvent(event)) problems.push({ ...p, path: `events.${i}.${p.path}` });
    if (seen.has(event.eventId)) problems.push({ path: `events.${i}.eventId`, message: 'appears twice in the batch' });
    seen.add(event.eventId);
  });
  return problems;
}

/**
 * The batch of these events, each validated already (validateEvent with events.auditRecorded):
 * only what a batch adds is checked — its id, its size, no event id twice — so no event is
 * checked a second time. The batch comes back frozen and validated for auditRecordedBatch.
 */
export function auditEventBatchOf(
  batchId: string,
  events: readonly Validated<AuditEvent>[],
): ValidationResult<AuditEventBatch> {
  const problems = check.uuid(batchId, 'batchId');
  if (events.length === 0 || events.length > MAX_AUDIT_BATCH_EVENTS)
    problems.push({ path: 'events', message: `must hold 1 to ${MAX_AUDIT_BATCH_EVENTS} events` });
  const seen = new Set<string>();
  events.forEach((event, i) => {
    if (seen.has(event.eventId)) problems.push({ path: `events.${i}.eventId`, message: 'appears twice in the batch' });
    seen.add(event.eventId);
  });
  if (problems.length > 0) return { ok: false, problems };
  const batch = create(AuditEventBatchSchema, { batchId, events: [...events] });
  Object.freeze(batch.events);
  return { ok: true, message: brandFrozen(Object.freeze(batch)) };
}

/** audit's request/reply contracts; the gateway's auditor API is built on them. */
export const auditRpc = {
  searchEntries: defineRpc({
    subject: `${P}.search_entries`,
    callers: ['gateway'],
    request: SearchEntriesRequestSchema,
    response: SearchEntriesResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      // One org (auditors), or one user across orgs ("who read my data"): never the whole log.
      ...(m.orgId === '' && m.userId === ''
        ? [{ path: 'orgId', message: 'orgId or userId is required' }]
        : optionalUuid(m.orgId, 'orgId')),
      ...short(m.applicationId, 'applicationId'),
      ...short(m.userId, 'userId'),
      ...short(m.integration, 'integration'),
      ...short(m.capability, 'capability'),
      ...check.maxLength(m.cursor, 200, 'cursor'),
      ...check.timestamp(m.from, 'from'),
      ...check.timestamp(m.to, 'to'),
      ...(m.limit > 1000 ? [{ path: 'limit', message: 'must be at most 1000' }] : []),
    ],
  }),
  getEntry: defineRpc({
    subject: `${P}.get_entry`,
    callers: ['gateway'],
    request: GetEntryRequestSchema,
    response: GetEntryResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...((m.orgId === '') === (m.userId === '')
        ? [{ path: 'orgId', message: 'exactly one of orgId and userId is required' }]
        : [...optionalUuid(m.orgId, 'orgId'), ...optionalUuid(m.userId, 'userId')]),
      ...check.uuid(m.eventId, 'eventId'),
    ],
  }),
  getCheckpoint: defineRpc({
    subject: `${P}.get_checkpoint`,
    callers: ['gateway'],
    request: GetCheckpointRequestSchema,
    response: GetCheckpointResponseSchema,
  }),
  getConsistencyProof: defineRpc({
    subject: `${P}.get_consistency_proof`,
    callers: ['gateway'],
    request: GetConsistencyProofRequestSchema,
    response: GetConsistencyProofResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => (m.oldSize > m.newSize ? [{ path: 'oldSize', message: 'must not exceed newSize' }] : []),
  }),
  createAuditor: defineRpc({
    subject: `${P}.create_auditor`,
    callers: ['gateway'],
    request: CreateAuditorRequestSchema,
    response: CreateAuditorResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.nonEmpty(m.name, 'name'),
      ...check.maxLength(m.name, 200, 'name'),
      ...short(m.createdBy, 'createdBy'),
    ],
  }),
  revokeAuditor: defineRpc({
    subject: `${P}.revoke_auditor`,
    callers: ['gateway'],
    request: RevokeAuditorRequestSchema,
    response: RevokeAuditorResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.auditorId, 'auditorId')],
  }),
  authenticateAuditor: defineRpc({
    subject: `${P}.authenticate_auditor`,
    callers: ['gateway'],
    request: AuthenticateAuditorRequestSchema,
    response: AuthenticateAuditorResponseSchema,
    timeoutMs: 1_500,
    validate: (m) => [...check.nonEmpty(m.token, 'token'), ...check.maxLength(m.token, 512, 'token')],
  }),
} as const;
