import { AppError } from '@context-gateway/errors';
import type { Decision } from '@context-gateway/policy-engine';
import { INTEGRATION_SCOPES, scopesForType, typesForScopes } from '@context-gateway/record-catalog';
import { Injectable } from '@nestjs/common';

import { approvalRequiredError, deniedError, PolicyDecider } from '../policy/policy-decider.js';
import type { Placement } from './shard-router.js';

export type RecordsVerdict =
  | { kind: 'allowed'; policyTypes: string[] | undefined; decision: Decision | undefined }
  | { kind: 'denied'; error: Error; decision: Decision };

/**
 * The three-layer check for a records query. A data scope is a read capability
 * (`spotify:read:playlists`), so a query for type T is allowed when the org, user and app
 * layers all allow at least one scope that covers T without asking for approval. A query
 * without a type is limited to the types of those scopes (the shard intersects them with the
 * grant's).
 */
@Injectable()
export class RecordsPolicy {
  constructor(private readonly decider: PolicyDecider) {}

  /** The scopes a query needs: those covering its type, or every scope of the integration. */
  neededScopes(placement: Placement, type: string | undefined): string[] {
    return type
      ? scopesForType(placement.integration, type)
      : Object.keys(INTEGRATION_SCOPES[placement.integration] ?? {});
  }

  /** `limitTo`: an access token's scopes; the query is kept to the types they cover. */
  async check(
    caller: { orgId: string; applicationId: string },
    placement: Placement,
    type: string | undefined,
    limitTo?: string[],
  ): Promise<RecordsVerdict> {
    const needed = this.neededScopes(placement, type);
    const scopes = limitTo ? needed.filter((scope) => limitTo.includes(scope)) : needed;
    const limited = scopes.length < needed.length;
    // Never "nothing to ask" for a token without any needed scope (the caller refuses it first).
    if (limited && scopes.length === 0)
      throw new AppError('scope_not_granted', 'The access token carries no scope for this');
    const [firstScope] = scopes;
    // A type the integration never produces: nothing to ask policy; the shard says scope_not_granted.
    if (firstScope === undefined) return { kind: 'allowed', policyTypes: undefined, decision: undefined };
    const decisions = await this.decider.evaluateEach(
      { orgId: caller.orgId, applicationId: caller.applicationId, userId: placement.userId },
      scopes,
    );
    // evaluateEach answers one decision per scope, in order.
    const [firstDecision] = decisions;
    if (firstDecision === undefined) throw new AppError('internal', 'The policy check answered no decision');
    // A scope whose rules ask for the person's approval of each call allows no query: a query
    // cannot wait for a passkey approval (only a held MCP call can), so it counts as refused.
    const usable = (d: Decision | undefined) => d?.allowed === true && d.approval === undefined;
    const allowed = scopes.filter((_, i) => usable(decisions[i]));
    if (allowed.length === 0) {
      const deniedAt = decisions.findIndex((d) => !d.allowed);
      const denied = decisions[deniedAt];
      if (denied)
        return { kind: 'denied', error: deniedError(scopes[deniedAt] ?? firstScope, denied), decision: denied };
      return { kind: 'denied', error: approvalRequiredError(firstScope, firstDecision), decision: firstDecision };
    }
    const firstAllowed = decisions.find(usable);
    if (type || (allowed.length === scopes.length && !limited))
      return { kind: 'allowed', policyTypes: undefined, decision: firstAllowed };
    return {
      kind: 'allowed',
      policyTypes: [...typesForScopes(placement.integration, allowed)],
      decision: firstAllowed,
    };
  }
}
