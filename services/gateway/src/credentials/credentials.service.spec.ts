import { compilePolicies, type PolicyRule } from '@context-gateway/policy-engine';
import { describe, expect, it } from '@jest/globals';

import type { ApplicationCaller } from '../auth/auth.types.js';
import type { McpServerView } from '../mcp/mcp-server-view.js';
import type { PolicyDecider } from '../policy/policy-decider.js';
import { CredentialsService } from './credentials.service.js';

// The policy half of POST /v1/credentials: the raw source token can do whatever any granted
// capability (and any tool of the integration's MCP server) can, so each must be allowed —
// and allowed without the person's approval, which a credential can never wait for.
const caller: ApplicationCaller = { kind: 'application', orgId: 'acme', applicationId: 'bot', apiKeyId: 'k' };
const CATALOG = ['github:read:repos', 'github:tools', 'github:delete_repo', 'github:list_repos'];
const server = {
  integration: 'github',
  tools: new Map([
    ['delete_repo', {}],
    ['list_repos', {}],
  ]),
};

function service(extra: PolicyRule[]) {
  const rules: PolicyRule[] = [
    { id: 'org-gh', layer: 'org', subject: 'acme', effect: 'allow', target: { integration: 'github' } },
    { id: 'user-gh', layer: 'user', subject: 'alice', effect: 'allow', target: { integration: 'github' } },
    { id: 'app-gh', layer: 'application', subject: 'bot', effect: 'allow', target: { integration: 'github' } },
    ...extra,
  ];
  const policies = compilePolicies(rules, { knownCapabilities: CATALOG });
  const decider = {
    mcpView: () =>
      Promise.resolve({
        revision: 1n,
        servers: [server as unknown as McpServerView],
        decide: (r: Parameters<typeof policies.decide>[0]) => policies.decide(r),
      }),
  } as unknown as PolicyDecider;
  return new CredentialsService({} as never, decider, {} as never);
}

const approve = (id: string, layer: 'org' | 'user', capability: string, resources?: string[]): PolicyRule => ({
  id,
  layer,
  subject: layer === 'org' ? 'acme' : 'alice',
  effect: 'allow',
  target: { capability },
  approvalRequired: true,
  ...(resources ? { resources } : {}),
});

describe('CredentialsService.checkIntegration', () => {
  it('hands out the credential when every capability is allowed outright', async () => {
    const verdict = await service([]).checkIntegration(caller, 'alice', ['github:read:repos', 'github:tools']);
    expect(verdict.error).toBeUndefined();
  });

  it.each([
    ['an org rule on a tool behind github:tools', approve('org-ask', 'org', 'github:delete_repo'), ['github:tools']],
    ['a user rule on a granted scope', approve('user-ask', 'user', 'github:read:repos'), ['github:read:repos']],
    [
      'a resource-scoped rule (the token reaches every resource)',
      approve('org-ask', 'org', 'github:delete_repo', ['acme/*']),
      ['github:read:repos', 'github:tools'],
    ],
  ])('refuses with approval_required when %s asks for approval', async (_, rule, scopes) => {
    const verdict = await service([rule]).checkIntegration(caller, 'alice', scopes);
    expect(verdict.error).toMatchObject({ code: 'approval_required', status: 403 });
    expect(verdict.error?.problems).toEqual([{ path: `decision.approval.${rule.layer}`, message: rule.id }]);
    // The audited decision is the one that asked.
    expect(verdict.decision.approval?.ruleIds).toEqual([rule.id]);
  });

  it('says policy_denied, not approval_required, when another capability is denied outright', async () => {
    const verdict = await service([
      approve('org-ask', 'org', 'github:delete_repo'),
      {
        id: 'app-no',
        layer: 'application',
        subject: 'bot',
        effect: 'deny',
        target: { capability: 'github:list_repos' },
      },
    ]).checkIntegration(caller, 'alice', ['github:tools']);
    expect(verdict.error).toMatchObject({ code: 'policy_denied' });
  });
});
