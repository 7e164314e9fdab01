import { compilePolicies, orgIntegrationRules } from '@context-gateway/policy-engine';
import { toProblem } from '@context-gateway/service-kit';
import { describe, expect, it } from '@jest/globals';

import { auditPolicyOf, deniedError } from './policy-decider.js';

// What an app sees when the gateway refuses: never a bare 403 — the layer and the rules.
describe('policy_denied', () => {
  const policies = compilePolicies(
    [
      ...orgIntegrationRules('org-1', ['github']),
      {
        id: 'no-secret-issues',
        layer: 'org',
        subject: 'org-1',
        effect: 'deny',
        target: { capability: 'github:create_issue' },
        resources: ['repo:acme/secret*'],
      },
      { id: 'app-allows', layer: 'application', subject: 'app-1', effect: 'allow', target: { integration: 'github' } },
      {
        id: 'grant:g1:github:create_issue',
        layer: 'user',
        subject: 'user-1',
        effect: 'allow',
        target: { capability: 'github:create_issue' },
        application: 'app-1',
      },
    ],
    { knownCapabilities: ['github:create_issue', 'github:read:repos'] },
  );
  const request = { orgId: 'org-1', applicationId: 'app-1', userId: 'user-1' };

  it('names the deciding layer and the matched deny rule, as problem+json', () => {
    const decision = policies.decide({
      ...request,
      capability: 'github:create_issue',
      resource: 'repo:acme/secret-plans',
    });
    const problem = toProblem(deniedError('github:create_issue', decision), '/v1/x', 'req-1');
    expect(problem).toMatchObject({ status: 403, code: 'policy_denied' });
    expect(problem.detail).toBe(
      "Denied 'github:create_issue': the org layer has a matching deny rule (no-secret-issues)",
    );
    expect(problem.errors).toEqual(
      expect.arrayContaining([
        { path: 'decision.decidedBy', message: 'org' },
        { path: 'decision.reason', message: 'deny_rule' },
        { path: 'decision.matched.org.deny', message: 'no-secret-issues' },
      ]),
    );
  });

  it('says which layer had no allow', () => {
    const decision = policies.decide({ ...request, capability: 'github:read:repos' });
    const error = deniedError('github:read:repos', decision);
    expect(error.message).toBe("Denied 'github:read:repos': the user layer has no rule allowing it");
    expect(error.problems).toContainEqual({ path: 'decision.decidedBy', message: 'user' });
  });

  it('calls an unknown capability unknown', () => {
    const error = deniedError('github:launch', policies.decide({ ...request, capability: 'github:launch' }));
    expect(error.message).toBe("Denied 'github:launch': 'github:launch' is not a known capability");
    expect(error.problems).toContainEqual({ path: 'decision.decidedBy', message: 'none' });
  });

  it('goes into the audit event with the layer and every matched rule', () => {
    const denied = policies.decide({
      ...request,
      capability: 'github:create_issue',
      resource: 'repo:acme/secret-plans',
    });
    expect(auditPolicyOf(denied)).toEqual({
      decidedBy: 'org',
      reason: 'deny_rule',
      matchedRuleIds: ['no-secret-issues', 'grant:g1:github:create_issue', 'app-allows'],
    });
    const allowed = policies.decide({ ...request, capability: 'github:create_issue', resource: 'repo:acme/frontend' });
    expect(auditPolicyOf(allowed)).toEqual({
      decidedBy: 'none',
      reason: 'allowed',
      matchedRuleIds: ['org:org-1:integration:github', 'grant:g1:github:create_issue', 'app-allows'],
    });
  });
});
