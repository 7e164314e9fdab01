// The benches' audit event (append.bench.mjs, decode.bench.mjs): a records query as the
// gateway records it, spread over 20 orgs and 5,000 users, one in ten denied.
import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ActorKind, AuditAction, AuditOutcome, AuditPhase } from '@context-gateway/proto';

const orgs = Array.from({ length: 20 }, () => randomUUID());

/** Event i's fields, for `create(AuditEventSchema, …)`. */
export function benchEventInit(i) {
  return {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date()),
    orgId: orgs[i % orgs.length],
    applicationId: randomUUID(),
    userId: `user-${i % 5000}`,
    integration: 'github',
    capability: 'github:read:repos',
    resource: `connection:${randomUUID()}`,
    connectionId: randomUUID(),
    action: AuditAction.DATA_QUERY,
    outcome: i % 10 === 0 ? AuditOutcome.DENIED : AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    policy: { decidedBy: 'user', reason: 'granted scope github:read:repos', matchedRuleIds: ['rule-1'] },
    requestId: randomUUID(),
    traceId: randomUUID().replace(/-/g, ''),
    latencyMs: 4,
    actorKind: ActorKind.API_KEY,
    actorId: randomUUID(),
    operation: 'POST /v1/query',
  };
}
