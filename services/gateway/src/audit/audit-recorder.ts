import { randomUUID } from 'node:crypto';

import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { activeTraceIds, currentRequestContext } from '@context-gateway/observability';
import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  PolicyEvaluationSchema,
} from '@context-gateway/proto';
import { NATS_CONNECTION, SERVICE_ENV } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable } from '@nestjs/common';

import type { Env } from '../env.js';
import { AuditGroupCommit } from './audit-group-commit.js';

/** Readable names for the proto enums, so callers write `action: 'data_query'`. */
export const AUDIT_ACTIONS = {
  data_query: AuditAction.DATA_QUERY,
  capability_invocation: AuditAction.CAPABILITY_INVOCATION,
  credential_issued: AuditAction.CREDENTIAL_ISSUED,
  connect_session: AuditAction.CONNECT_SESSION,
  consent: AuditAction.CONSENT,
  grant: AuditAction.GRANT,
  revocation: AuditAction.REVOCATION,
  policy_change: AuditAction.POLICY_CHANGE,
  sign_in: AuditAction.SIGN_IN,
  audit_read: AuditAction.AUDIT_READ,
  admin_change: AuditAction.ADMIN_CHANGE,
  authentication_failed: AuditAction.AUTHENTICATION_FAILED,
} as const;
export type AuditActionName = keyof typeof AUDIT_ACTIONS;

export const AUDIT_OUTCOMES = {
  allowed: AuditOutcome.ALLOWED,
  denied: AuditOutcome.DENIED,
  error: AuditOutcome.ERROR,
} as const;
export type AuditOutcomeName = keyof typeof AUDIT_OUTCOMES;

export const AUDIT_ACTOR_KINDS = {
  api_key: ActorKind.API_KEY,
  user_session: ActorKind.USER_SESSION,
  operator: ActorKind.OPERATOR,
  auditor: ActorKind.AUDITOR,
  system: ActorKind.SYSTEM,
  anonymous: ActorKind.ANONYMOUS,
  access_token: ActorKind.ACCESS_TOKEN,
} as const;
type ActorKindName = keyof typeof AUDIT_ACTOR_KINDS;

/** The policy engine's verdict as the audit trail keeps it. */
interface AuditPolicy {
  /** 'org' | 'app' | 'user' (the deciding layer) or 'none'. */
  decidedBy: string;
  reason: string;
  matchedRuleIds?: string[];
}

/**
 * What a caller says about an event. Ids only — never a token, a secret or a record's
 * contents (resource names an object: `connection:<id>`, `grant:<id>`, a scope).
 */
export interface AuditRecord {
  action: AuditActionName;
  outcome: AuditOutcomeName;
  orgId?: string;
  applicationId?: string;
  userId?: string;
  integration?: string;
  capability?: string;
  resource?: string;
  connectionId?: string;
  actorKind?: ActorKindName;
  actorId?: string;
  policy?: AuditPolicy;
  /** The AppError code of a denial or error. */
  errorCode?: string;
  /** Milliseconds since the request started (the route interceptor fills it in). */
  latencyMs?: number;
  /** `GET /v1/...` or a subject: what produced the event. */
  operation?: string;
  /** Defaults to the current request context's id. */
  requestId?: string;
  /** Gateway mode: the approval request a held tool call was settled against. */
  approvalId?: string;
  /** Gateway mode: the named virtual server (`/mcp/v/<name>`) a call came through. */
  mcpVirtualServer?: string;
}

/** Handle of a recorded intent, passed back to recordOutcome. */
export interface AuditIntent {
  readonly eventId: string;
  readonly record: Omit<AuditRecord, 'outcome'>;
  /** performance.now() when the intent was stored: the outcome's latency is measured from it. */
  readonly startedAt: number;
}

/**
 * Writes audit events to the AUDIT stream and waits for the stream's ack: when record()
 * resolves the event is on disk (file storage), when it rejects with `audit_unavailable`
 * the caller must not execute or answer — there is nothing the trail does not see. Events
 * of concurrent requests share one message and one ack (AuditGroupCommit).
 */
@Injectable()
export class AuditRecorder {
  private readonly commits: AuditGroupCommit;

  constructor(
    @Inject(NATS_CONNECTION) nc: NatsConnection,
    @Inject(SERVICE_ENV) env: Env,
    private readonly clock: Clock,
  ) {
    this.commits = new AuditGroupCommit(new JetStreamPublisher(nc), env.AUDIT_PUBLISH_TIMEOUT_MS);
  }

  /** Records one complete event; resolves with its event id once the stream stored it. */
  record(
    record: AuditRecord,
    phase: AuditPhase = AuditPhase.COMPLETE,
    ids: { eventId?: string; intentEventId?: string } = {},
  ): Promise<string> {
    // Not async, and one then() instead of an await: each promise (and each await's hidden
    // one) runs AsyncLocalStorage's promise hook, and this runs once per audited request.
    // A throw of either step is a rejection, as it was when this was async: the guard's and
    // the interceptor's .catch()/await see it, rather than a synchronous throw past them.
    let event: AuditEvent;
    try {
      event = toEvent(record, phase, this.clock.now(), ids.eventId ?? randomUUID(), ids.intentEventId);
    } catch (error) {
      // Not an unstored event but a caller's bad record or clock: the error as thrown.
      return Promise.reject(error);
    }
    let stored: Promise<void>;
    try {
      // append validates, encodes and may flush synchronously: its throw is just as unrecorded.
      stored = this.commits.append(event);
    } catch (error) {
      return Promise.reject(recordFailure(error));
    }
    return stored.then(
      () => event.eventId,
      (error: unknown) => {
        throw recordFailure(error);
      },
    );
  }

  /**
   * Before a tool call / capability invocation runs: records its intent (outcome allowed —
   * the checks passed and it is about to run). Throws audit_unavailable → do not run it.
   */
  async recordIntent(record: Omit<AuditRecord, 'outcome'>): Promise<AuditIntent> {
    const eventId = await this.record({ ...record, outcome: 'allowed', latencyMs: 0 }, AuditPhase.INTENT);
    return { eventId, record, startedAt: performance.now() };
  }

  /**
   * After it ran: records how it ended, linked to its intent, with the time it took. Not
   * async: record()'s own promise is the answer (the interceptor awaits it directly); a
   * throw is still a rejection.
   */
  recordOutcome(
    intent: AuditIntent,
    outcome: { outcome: AuditOutcomeName; errorCode?: string; latencyMs?: number },
  ): Promise<string> {
    try {
      return this.record(
        {
          ...intent.record,
          outcome: outcome.outcome,
          errorCode: outcome.errorCode,
          latencyMs: outcome.latencyMs ?? performance.now() - intent.startedAt,
        },
        AuditPhase.OUTCOME,
        { intentEventId: intent.eventId },
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** What a failed append means for the request: audit_unavailable, or internal for our own malformed event. */
function recordFailure(error: unknown): AppError {
  const appError = AppError.from(error);
  if (appError.code === 'validation_failed') {
    // A malformed event is our bug, not an outage, but it is just as unrecorded.
    return new AppError(
      'internal',
      `audit event rejected: ${appError.problems.map((p) => `${p.path} ${p.message}`).join('; ')}`,
      [],
      { cause: error },
    );
  }
  return new AppError('audit_unavailable', 'The audit trail could not store this request, so it was not executed', [], {
    cause: error,
  });
}

const EVENT_TYPE = AuditEventSchema.typeName;
const TIMESTAMP_TYPE = TimestampSchema.typeName;
const POLICY_TYPE = PolicyEvaluationSchema.typeName;

/**
 * The AuditEvent of a record, written as the message literal `create(AuditEventSchema, ...)`
 * would make (audit-recorder.spec.ts holds the two equal, field by field and on the wire):
 * the generic create walks the schema and converts every field of every event, a few
 * per cent of the gateway's CPU per records query with the timestamp's own create. Every
 * field is set, in schema order, so every event has one shape. One deliberate difference:
 * with no policy the key `policy` is present and undefined, where create() leaves it out
 * (same shape for every event; equal under toEqual and on the wire, and the spec's
 * toStrictEqual names exactly this key as the only one allowed to differ).
 */
export function toEvent(
  record: AuditRecord,
  phase: AuditPhase,
  occurredAtMs: number,
  eventId: string,
  intentEventId = '',
): AuditEvent {
  const policy = record.policy;
  // What `new Date(ms).getTime()` keeps of a clock reading (TimeClip), as timestampFromDate saw it.
  const ms = Math.abs(occurredAtMs) <= 8.64e15 ? Math.trunc(occurredAtMs) + 0 : Number.NaN;
  const seconds = Math.floor(ms / 1000);
  return {
    $typeName: EVENT_TYPE,
    eventId,
    // BigInt throws on NaN, as timestampFromDate did for an invalid date.
    occurredAt: { $typeName: TIMESTAMP_TYPE, seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 },
    orgId: record.orgId ?? '',
    applicationId: record.applicationId ?? '',
    userId: record.userId ?? '',
    integration: record.integration ?? '',
    capability: record.capability ?? '',
    resource: record.resource ?? '',
    action: AUDIT_ACTIONS[record.action],
    outcome: AUDIT_OUTCOMES[record.outcome],
    phase,
    policy: policy
      ? {
          $typeName: POLICY_TYPE,
          decidedBy: policy.decidedBy,
          reason: policy.reason,
          matchedRuleIds: policy.matchedRuleIds ?? [],
        }
      : undefined,
    errorCode: record.errorCode ?? '',
    requestId: record.requestId ?? currentRequestContext()?.requestId ?? '',
    traceId: activeTraceIds().traceId ?? '',
    latencyMs: Math.max(0, Math.round(record.latencyMs ?? 0)),
    actorKind: AUDIT_ACTOR_KINDS[record.actorKind ?? 'anonymous'],
    actorId: record.actorId ?? '',
    connectionId: record.connectionId ?? '',
    intentEventId,
    operation: record.operation ?? '',
    approvalId: record.approvalId ?? '',
    mcpVirtualServer: record.mcpVirtualServer ?? '',
  };
}
