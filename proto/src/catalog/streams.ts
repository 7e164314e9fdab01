import { timestampDate } from '@bufbuild/protobuf/wkt';

import { decodeAuditEvent, decodeAuditEventBatch } from '../codecs/audit-event.js';
import { AuditEventBatchSchema, AuditEventSchema } from '../gen/contextgateway/audit/v1/audit_pb.js';
import {
  ApplicationChangedSchema,
  GrantChangedSchema,
  TokensRevokedSchema,
} from '../gen/contextgateway/control/v1/control_pb.js';
import { PolicyChangedSchema } from '../gen/contextgateway/policy/v1/policy_pb.js';
import { SyncJobSchema, SyncRunFinishedSchema } from '../gen/contextgateway/sync/v1/sync_pb.js';
import { validateAuditEvent, validateAuditEventBatch } from './audit.js';
import { type ConsumerDescriptor, defineEvent, type StreamDescriptor } from './descriptors.js';
import { check } from './validation.js';

const MINUTE = 60_000;

/** JetStream streams: every one on file storage, declared here and created at start. */
export const streams = {
  syncJobs: {
    name: 'SYNC_JOBS',
    subjects: ['sync.v1.jobs.>'],
    retention: 'workqueue',
    // A job re-requested within two minutes (a retried publish, a webhook storm) is one job.
    duplicateWindowMs: 2 * MINUTE,
    maxAgeMs: 7 * 24 * 60 * MINUTE,
    description: 'Sync jobs for the sync-worker; each is consumed by exactly one worker.',
  },
  control: {
    name: 'CONTROL',
    subjects: ['control.v1.>'],
    retention: 'limits',
    duplicateWindowMs: 2 * MINUTE,
    // Kept long enough for a data-plane instance that was down for a while to catch up by replay.
    maxAgeMs: 30 * 24 * 60 * MINUTE,
    description:
      'Control-plane facts (application declarations, grants, policy changes) that data-plane caches follow.',
    // The gateway follows it with in-memory ordered consumers (policy cache, token revocations).
    readers: ['gateway'],
    // Each stored event's sequence, pushed to the gateways before its publisher is answered:
    // their freshness check for a request (docs/policy.md, "Freshness").
    republish: { source: 'control.v1.>', destination: 'control.seq.v1.>' },
  },
  audit: {
    name: 'AUDIT',
    subjects: ['audit.v1.events.>'],
    // Limits, not work queue: the stream is the durable buffer in front of the audit log and
    // stays replayable for a week, so an audit-service outage or a restore loses nothing.
    retention: 'limits',
    // A gateway that retries a publish whose ack it missed must not create a second entry.
    duplicateWindowMs: 10 * MINUTE,
    maxAgeMs: 7 * 24 * 60 * MINUTE,
    description: 'Audit events; the gateway answers only after this stream acknowledged the event.',
  },
  syncEvents: {
    name: 'SYNC_EVENTS',
    subjects: ['sync.v1.events.>'],
    retention: 'limits',
    duplicateWindowMs: 2 * MINUTE,
    // Kept a week: a broker that was down catches up and still sends every sync webhook.
    maxAgeMs: 7 * 24 * 60 * MINUTE,
    description: "What sync runs ended with; the connection-broker turns them into applications' webhooks.",
  },
  deadLetters: {
    name: 'DEAD_LETTERS',
    subjects: ['deadletter.v1.>'],
    retention: 'limits',
    duplicateWindowMs: 2 * MINUTE,
    // Kept a month: long enough for an operator to notice, inspect and replay.
    maxAgeMs: 30 * 24 * 60 * MINUTE,
    description: 'Messages a consumer could never process (invalid, or out of retries), kept verbatim with the reason.',
  },
} as const satisfies Record<string, StreamDescriptor>;

export const events = {
  /** One audit event; Nats-Msg-Id = event id (see docs/audit.md). */
  auditRecorded: defineEvent({
    stream: streams.audit,
    subject: 'audit.v1.events.recorded',
    // The gateway audits every access; identity its OAuth token issuance and revocations.
    publishers: ['gateway', 'identity'],
    message: AuditEventSchema,
    messageId: (event) => event.eventId,
    validate: validateAuditEvent,
    decode: decodeAuditEvent,
  }),
  /**
   * Several audit events in one message (the gateway's group commit): the same subject as
   * auditRecorded, told apart by the header AUDIT_BATCH_HEADER = "1"; Nats-Msg-Id = batch id.
   */
  auditRecordedBatch: defineEvent({
    stream: streams.audit,
    subject: 'audit.v1.events.recorded',
    // The subject's publishers: NATS permissions are per subject, whichever payload it carries.
    publishers: ['gateway', 'identity'],
    message: AuditEventBatchSchema,
    messageId: (batch) => batch.batchId,
    validate: validateAuditEventBatch,
    decode: decodeAuditEventBatch,
  }),
  /** identity, after each application create/update commit; policy derives the app-layer rules from it. */
  applicationChanged: defineEvent({
    stream: streams.control,
    subject: 'control.v1.application_changed',
    publishers: ['identity'],
    message: ApplicationChangedSchema,
    // (application, revision) is the fact: a retried publish of it is stored once.
    messageId: (m) => `application_changed:${m.applicationId}:${m.revision}`,
    validate: (m) => [
      ...check.uuid(m.eventId, 'eventId'),
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...(m.revision > 0n ? [] : [{ path: 'revision', message: 'must be positive' }]),
      ...(m.occurredAt && !Number.isNaN(timestampDate(m.occurredAt).getTime())
        ? []
        : [{ path: 'occurredAt', message: 'must be set' }]),
    ],
  }),
  syncJobRequested: defineEvent({
    stream: streams.syncJobs,
    subject: 'sync.v1.jobs.requested',
    // The broker queues the first sync after consent; the worker its schedules, retries and requests.
    publishers: ['connection-broker', 'sync-worker'],
    message: SyncJobSchema,
    messageId: (job) => job.jobId,
    validate: (job) => [
      ...check.uuid(job.jobId, 'jobId'),
      ...check.uuid(job.connectionId, 'connectionId'),
      ...check.enumSet(job.reason, 'reason'),
      ...(job.requestedAt && !Number.isNaN(timestampDate(job.requestedAt).getTime())
        ? []
        : [{ path: 'requestedAt', message: 'must be set' }]),
    ],
  }),
  /** sync-worker, when a run ended for good (completed, or failed after its last retry). */
  syncRunFinished: defineEvent({
    stream: streams.syncEvents,
    subject: 'sync.v1.events.run_finished',
    publishers: ['sync-worker'],
    message: SyncRunFinishedSchema,
    messageId: (m) => `sync_run_finished:${m.eventId}`,
    validate: (m) => [
      ...check.uuid(m.eventId, 'eventId'),
      ...check.uuid(m.connectionId, 'connectionId'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...check.enumSet(m.outcome, 'outcome'),
      ...check.maxLength(m.errorCode, 64, 'errorCode'),
      ...check.timestamp(m.finishedAt, 'finishedAt'),
    ],
  }),
  /** policy, after each commit that bumped an org's revision; gateways refresh their cache from it (docs/policy.md). */
  policyChanged: defineEvent({
    stream: streams.control,
    subject: 'control.v1.policy_changed',
    publishers: ['policy'],
    message: PolicyChangedSchema,
    // (org, revision) is the fact: a retried publish of it is stored once.
    messageId: (m) => `policy_changed:${m.orgId}:${m.revision}`,
    validate: (m) => [
      ...check.uuid(m.eventId, 'eventId'),
      ...check.uuid(m.orgId, 'orgId'),
      ...(m.revision > 0n ? [] : [{ path: 'revision', message: 'must be positive' }]),
      ...(m.occurredAt && !Number.isNaN(timestampDate(m.occurredAt).getTime())
        ? []
        : [{ path: 'occurredAt', message: 'must be set' }]),
    ],
  }),
  /** connection-broker, after each grant commit (created, scopes changed, revoked); policy and shards follow it. */
  grantChanged: defineEvent({
    stream: streams.control,
    subject: 'control.v1.grant_changed',
    publishers: ['connection-broker'],
    message: GrantChangedSchema,
    // One message per (grant, revision): a retried publish of the same change is stored once.
    messageId: (event) => `grant-${event.grantId}-${event.revision}`,
    validate: (event) => [
      ...check.uuid(event.eventId, 'eventId'),
      ...check.uuid(event.grantId, 'grantId'),
      ...check.uuid(event.orgId, 'orgId'),
      ...check.uuid(event.applicationId, 'applicationId'),
      ...check.uuid(event.userId, 'userId'),
      ...check.uuid(event.connectionId, 'connectionId'),
      ...check.nonEmpty(event.integration, 'integration'),
      ...check.enumSet(event.status, 'status'),
    ],
  }),
  /** identity, when OAuth tokens of a grant, an application or a person are revoked; gateways refuse them from the next request (docs/identity.md). */
  tokensRevoked: defineEvent({
    stream: streams.control,
    subject: 'control.v1.tokens_revoked',
    publishers: ['identity'],
    message: TokensRevokedSchema,
    messageId: (m) => `tokens_revoked:${m.eventId}`,
    validate: (m) => [
      ...check.uuid(m.eventId, 'eventId'),
      ...check.uuid(m.orgId, 'orgId'),
      ...check.enumSet(m.kind, 'kind'),
      ...check.nonEmpty(m.subjectId, 'subjectId'),
      ...(m.revokedAt && !Number.isNaN(timestampDate(m.revokedAt).getTime())
        ? []
        : [{ path: 'revokedAt', message: 'must be set' }]),
    ],
  }),
} as const;

/**
 * Every durable consumer, by owner. The NATS bootstrap creates each one (a pull consumer);
 * its owner may only pull, ack, read its info and tune it, and dead-letter what it cannot
 * process into DEAD_LETTERS under its stream's subject (deadLetterSubject).
 */
export const consumers = {
  /** sync-worker's one shared work queue consumer: each job goes to one worker. */
  syncJobs: {
    service: 'sync-worker',
    stream: streams.syncJobs,
    durable: 'sync-worker',
    filterSubject: 'sync.v1.jobs.requested',
  },
  /** personal-server: grant revocations applied to the shared grants table, once across shards. */
  grantChanges: {
    service: 'personal-server',
    stream: streams.control,
    durable: 'personal-server-grant-changes',
    filterSubject: 'control.v1.grant_changed',
  },
  /** policy: every control fact, one at a time in stream order. */
  policyControl: {
    service: 'policy',
    stream: streams.control,
    durable: 'policy-control',
    filterSubject: 'control.v1.>',
  },
  /** connection-broker: sync outcomes turned into webhook messages for the apps holding grants. */
  brokerSyncEvents: {
    service: 'connection-broker',
    stream: streams.syncEvents,
    durable: 'connection-broker-sync-events',
    filterSubject: 'sync.v1.events.run_finished',
  },
  /** audit's log writer: the AUDIT stream, appended to the hash-chained log. */
  auditLogWriter: {
    service: 'audit',
    stream: streams.audit,
    durable: 'audit-log-writer',
    filterSubject: 'audit.v1.events.recorded',
  },
} as const satisfies Record<string, ConsumerDescriptor>;

/** Where a consumer of `stream` puts what it can never process. */
export function deadLetterSubject(stream: StreamDescriptor): string {
  return `deadletter.v1.${stream.name.toLowerCase()}`;
}
