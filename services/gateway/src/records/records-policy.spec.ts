import { compilePolicies, type PolicyRule } from '@context-gateway/policy-engine';
import { describe, expect, it } from '@jest/globals';

import type { PolicyDecider } from '../policy/policy-decider.js';
import { RecordsPolicy } from './records-policy.js';

// A records query cannot wait for the person's approval of one exact call, so a scope whose
// rules ask for approval serves it nothing: refused when it is the only one, left out otherwise.
const CATALOG = ['github:read:profile', 'github:read:repos', 'github:read:stars', 'github:read:issues'];
const caller = { orgId: 'acme', applicationId: 'bot' };
const placement = { shard: 0, userId: 'alice', integration: 'github' };

function policy(extra: PolicyRule[]) {
  const policies = compilePolicies(
    [
      { id: 'org-gh', layer: 'org', subject: 'acme', effect: 'allow', target: { integration: 'github' } },
      { id: 'user-gh', layer: 'user', subject: 'alice', effect: 'allow', target: { integration: 'github' } },
      { id: 'app-gh', layer: 'application', subject: 'bot', effect: 'allow', target: { integration: 'github' } },
      ...extra,
    ],
    { knownCapabilities: CATALOG },
  );
  const decider = {
    evaluateEach: (request: { orgId: string; applicationId: string; userId: string }, capabilities: string[]) =>
      Promise.resolve(capabilities.map((capability) => policies.decide({ ...request, capability }))),
  } as unknown as PolicyDecider;
  return new RecordsPolicy(decider);
}

const asks: PolicyRule = {
  id: 'org-ask',
  layer: 'org',
  subject: 'acme',
  effect: 'allow',
  target: { capability: 'github:read:repos' },
  approvalRequired: true,
};

describe('RecordsPolicy and approval_required', () => {
  it('refuses a query for a type only an approval-asking scope covers', async () => {
    const verdict = await policy([asks]).check(caller, placement, 'code.repository');
    expect(verdict.kind).toBe('denied');
    expect(verdict.kind === 'denied' && verdict.error).toMatchObject({ code: 'approval_required' });
    expect(verdict.decision?.approval?.ruleIds).toEqual(['org-ask']);
    // Without the rule the same query is allowed.
    expect((await policy([]).check(caller, placement, 'code.repository')).kind).toBe('allowed');
  });

  it('keeps an untyped query to the types of scopes allowed without approval', async () => {
    const verdict = await policy([asks]).check(caller, placement, undefined);
    expect(verdict).toMatchObject({ kind: 'allowed' });
    expect(verdict.kind === 'allowed' && verdict.policyTypes?.sort()).toEqual(['code.issue', 'code.star', 'profile']);
  });
});
