import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  ActorKind,
  AuditAction,
  type AuditEntry,
  AuditOutcome,
  AuditPhase,
  type Checkpoint,
} from '@context-gateway/proto';
import { z } from 'zod';

import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from '../audit/audit-recorder.js';
import { queryInt } from '../http/input.js';
import { required } from '../http/required.js';

const actionNames = Object.keys(AUDIT_ACTIONS) as [keyof typeof AUDIT_ACTIONS, ...(keyof typeof AUDIT_ACTIONS)[]];
const outcomeNames = Object.keys(AUDIT_OUTCOMES) as [keyof typeof AUDIT_OUTCOMES, ...(keyof typeof AUDIT_OUTCOMES)[]];

/** Search filters shared by the list and the export. Times are ISO 8601; `to` is exclusive. */
const searchFilters = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  applicationId: z.string().max(256).optional(),
  userId: z.string().max(256).optional(),
  integration: z.string().max(256).optional(),
  capability: z.string().max(256).optional(),
  outcome: z.enum(outcomeNames).optional(),
  action: z.enum(actionNames).optional(),
});

const page = {
  cursor: z.string().max(200).optional().describe('`nextCursor` of the previous page.'),
  limit: queryInt(1, 1000).default(100),
};

/**
 * `from` after `to` is a mistake in the request (swapped bounds, a wrong time zone), not a
 * question whose answer is "nothing": answered as the mistake, so the client sees it.
 */
const fromNotAfterTo = (q: { from?: string; to?: string }) =>
  !(q.from && q.to && Date.parse(q.from) > Date.parse(q.to));
const fromAfterTo = { message: 'must not be after to', path: ['from'] };

export const searchQuery = searchFilters.extend(page).refine(fromNotAfterTo, fromAfterTo);
export type SearchQuery = z.infer<typeof searchQuery>;

/** A user's search of their own entries: the user is the caller. */
export const ownSearchQuery = searchFilters.omit({ userId: true }).extend(page).refine(fromNotAfterTo, fromAfterTo);

export const exportQuery = searchFilters
  .extend({ format: z.enum(['ndjson', 'csv']).default('ndjson') })
  .refine(fromNotAfterTo, fromAfterTo);
export type ExportQuery = z.infer<typeof exportQuery>;

/** One audit entry as the API shows it: the event's fields, its log position and leaf hash. */
const auditEntrySchema = z.object({
  index: z.number().int(),
  eventId: z.string(),
  occurredAt: z.string(),
  recordedAt: z.string(),
  orgId: z.string().nullable(),
  applicationId: z.string().nullable(),
  userId: z.string().nullable(),
  integration: z.string().nullable(),
  capability: z.string().nullable(),
  resource: z.string().nullable(),
  connectionId: z.string().nullable(),
  approvalId: z
    .string()
    .nullable()
    .describe('Gateway mode: the approval request a held tool call was settled against.'),
  mcpVirtualServer: z
    .string()
    .nullable()
    .describe('Gateway mode: the named virtual server (`/mcp/v/<name>`) a call came through; null for /mcp.'),
  action: z.string(),
  outcome: z.string(),
  phase: z.string(),
  intentEventId: z.string().nullable(),
  policy: z.object({ decidedBy: z.string(), reason: z.string(), matchedRuleIds: z.array(z.string()) }).nullable(),
  errorCode: z.string().nullable(),
  actorKind: z.string(),
  actorId: z.string().nullable(),
  operation: z.string().nullable(),
  requestId: z.string().nullable(),
  traceId: z.string().nullable(),
  latencyMs: z.number().int(),
  leafHash: z.string().describe('hex SHA-256 RFC 6962 leaf hash'),
});
export type AuditEntryJson = z.infer<typeof auditEntrySchema>;

export const searchResultSchema = z.object({ entries: z.array(auditEntrySchema), nextCursor: z.string().nullable() });

const checkpointSchema = z.object({
  treeSize: z.number().int(),
  rootHash: z.string().describe('base64'),
  timestamp: z.string(),
  origin: z.string(),
  signedNote: z.string().describe('C2SP signed note: checkpoint body + Ed25519 signature line'),
});

export const entryWithProofSchema = z.object({
  entry: auditEntrySchema,
  canonicalEntry: z.string().describe('base64 of the exact bytes whose leaf hash is leafHash'),
  checkpoint: checkpointSchema.nullable().describe('null until a checkpoint covering the entry is signed'),
  inclusionProof: z.array(z.string()).describe('base64 hashes, RFC 9162 §2.1.3 order'),
});

export const checkpointResponseSchema = z.object({
  checkpoint: checkpointSchema,
  publicKey: z.string().describe('base64 raw Ed25519 public key'),
  keyName: z.string(),
});

export const consistencyResponseSchema = z.object({
  oldCheckpoint: checkpointSchema,
  newCheckpoint: checkpointSchema,
  proof: z.array(z.string()),
});

const enumName = (names: Record<number, string>, value: number, prefix: string) =>
  (names[value] ?? 'UNSPECIFIED').toLowerCase().replace(prefix, '');
const orNull = (value: string) => (value === '' ? null : value);
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

export function toEntryJson(entry: AuditEntry): AuditEntryJson {
  const e = required(entry.event, 'audit entry event');
  return {
    index: Number(entry.index),
    eventId: e.eventId,
    occurredAt: timestampDate(required(e.occurredAt, 'audit event occurredAt')).toISOString(),
    recordedAt: entry.recordedAt ? timestampDate(entry.recordedAt).toISOString() : '',
    orgId: orNull(e.orgId),
    applicationId: orNull(e.applicationId),
    userId: orNull(e.userId),
    integration: orNull(e.integration),
    capability: orNull(e.capability),
    resource: orNull(e.resource),
    connectionId: orNull(e.connectionId),
    approvalId: orNull(e.approvalId),
    mcpVirtualServer: orNull(e.mcpVirtualServer),
    action: enumName(AuditAction, e.action, ''),
    outcome: enumName(AuditOutcome, e.outcome, ''),
    phase: enumName(AuditPhase, e.phase, ''),
    intentEventId: orNull(e.intentEventId),
    policy: e.policy
      ? { decidedBy: e.policy.decidedBy, reason: e.policy.reason, matchedRuleIds: [...e.policy.matchedRuleIds] }
      : null,
    errorCode: orNull(e.errorCode),
    actorKind: enumName(ActorKind, e.actorKind, ''),
    actorId: orNull(e.actorId),
    operation: orNull(e.operation),
    requestId: orNull(e.requestId),
    traceId: orNull(e.traceId),
    latencyMs: e.latencyMs,
    leafHash: Buffer.from(entry.leafHash).toString('hex'),
  };
}

export function toCheckpointJson(c: Checkpoint) {
  return {
    treeSize: Number(c.treeSize),
    rootHash: b64(c.rootHash),
    timestamp: c.timestamp ? timestampDate(c.timestamp).toISOString() : '',
    origin: c.origin,
    signedNote: c.signedNote,
  };
}

export const encodeHashes = (hashes: Uint8Array[]) => hashes.map(b64);

/** CSV columns of the export, in order. */
const CSV_COLUMNS = [
  'index',
  'eventId',
  'occurredAt',
  'recordedAt',
  'orgId',
  'applicationId',
  'userId',
  'integration',
  'capability',
  'resource',
  'connectionId',
  'action',
  'outcome',
  'phase',
  'intentEventId',
  'policyDecidedBy',
  'policyReason',
  'policyMatchedRuleIds',
  'errorCode',
  'actorKind',
  'actorId',
  'operation',
  'requestId',
  'traceId',
  'latencyMs',
  'leafHash',
] as const;

type CsvValue = string | number | null | undefined;

/** RFC 4180 field; a leading =,+,-,@ is prefixed with ' so a spreadsheet never runs it as a formula. */
function csvField(value: CsvValue): string {
  let text = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvRow(e: AuditEntryJson): string {
  const flat: Record<(typeof CSV_COLUMNS)[number], CsvValue> = {
    ...e,
    policyDecidedBy: e.policy?.decidedBy,
    policyReason: e.policy?.reason,
    policyMatchedRuleIds: e.policy?.matchedRuleIds.join(' '),
  };
  return `${CSV_COLUMNS.map((c) => csvField(flat[c])).join(',')}\r\n`;
}

export const csvHeader = () => `${CSV_COLUMNS.join(',')}\r\n`;
