import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';

import {
  applicationDeclarationRules,
  compilePolicies,
  grantRules,
  orgIntegrationRules,
  type PolicyRequest,
  type PolicyRule,
} from './index.js';

const CATALOG = ['github:create_issue', 'github:read:repos', 'spotify:read:playlists'];
const request: PolicyRequest = {
  orgId: 'acme',
  userId: 'alice',
  applicationId: 'bot',
  capability: 'github:create_issue',
};

function allow(
  id: string,
  layer: PolicyRule['layer'],
  subject: string,
  target: PolicyRule['target'],
  extra: Partial<PolicyRule> = {},
): PolicyRule {
  return { id, layer, subject, effect: 'allow', target, ...extra };
}
function deny(
  id: string,
  layer: PolicyRule['layer'],
  subject: string,
  target: PolicyRule['target'],
  extra: Partial<PolicyRule> = {},
): PolicyRule {
  return { id, layer, subject, effect: 'deny', target, ...extra };
}

/** An allow in every layer for the whole github integration. */
const baseline: PolicyRule[] = [
  allow('org-gh', 'org', 'acme', { integration: 'github' }),
  allow('user-gh', 'user', 'alice', { integration: 'github' }),
  allow('app-gh', 'application', 'bot', { integration: 'github' }),
];

const decide = (rules: PolicyRule[], req: PolicyRequest = request) =>
  compilePolicies(rules, { knownCapabilities: CATALOG }).decide(req);

describe('compilePolicies().decide', () => {
  it('allows when every layer allows, and lists the allowing rules of each layer', () => {
    expect(decide(baseline)).toEqual({
      allowed: true,
      decidedBy: null,
      reason: 'allowed',
      matched: [
        { layer: 'org', ruleIds: ['org-gh'], effect: 'allow' },
        { layer: 'user', ruleIds: ['user-gh'], effect: 'allow' },
        { layer: 'application', ruleIds: ['app-gh'], effect: 'allow' },
      ],
    });
  });

  it.each(['org', 'user', 'application'] as const)('denies with no_allow when the %s layer has no allow', (layer) => {
    const decision = decide(baseline.filter((r) => r.layer !== layer));
    expect(decision).toMatchObject({ allowed: false, decidedBy: layer, reason: 'no_allow' });
    expect(decision.matched.map((m) => m.layer)).not.toContain(layer);
  });

  it.each([
    ['org', 'acme'],
    ['user', 'alice'],
    ['application', 'bot'],
  ] as const)('lets a %s-layer deny override that layer’s allow and names the rule', (layer, subject) => {
    const decision = decide([...baseline, deny('no-issues', layer, subject, { capability: 'github:create_issue' })]);
    expect(decision).toMatchObject({ allowed: false, decidedBy: layer, reason: 'deny_rule' });
    expect(decision.matched).toContainEqual({ layer, ruleIds: ['no-issues'], effect: 'deny' });
  });

  it('combines an integration-wide allow with a capability deny: the rest of the integration stays usable', () => {
    const rules = [...baseline, deny('org-no-issues', 'org', 'acme', { capability: 'github:create_issue' })];
    expect(decide(rules).allowed).toBe(false);
    expect(decide(rules, { ...request, capability: 'github:read:repos' }).allowed).toBe(true);
  });

  it('names the first refusing layer in org, user, application order and explains every layer', () => {
    const decision = decide([
      allow('org-gh', 'org', 'acme', { integration: 'github' }),
      deny('user-no', 'user', 'alice', { integration: 'github' }),
      deny('app-no', 'application', 'bot', { capability: 'github:create_issue' }),
    ]);
    expect(decision.decidedBy).toBe('user');
    expect(decision.matched).toEqual([
      { layer: 'org', ruleIds: ['org-gh'], effect: 'allow' },
      { layer: 'user', ruleIds: ['user-no'], effect: 'deny' },
      { layer: 'application', ruleIds: ['app-no'], effect: 'deny' },
    ]);
  });

  it('ignores rules of other subjects', () => {
    const rules = [
      ...baseline,
      deny('other-user', 'user', 'bob', { integration: 'github' }),
      deny('other-org', 'org', 'globex', { integration: 'github' }),
    ];
    expect(decide(rules).allowed).toBe(true);
    const bob = decide(rules, { ...request, userId: 'bob' });
    expect(bob).toMatchObject({ allowed: false, decidedBy: 'user', reason: 'deny_rule' });
    expect(bob.matched).toEqual([
      { layer: 'org', ruleIds: ['org-gh'], effect: 'allow' },
      { layer: 'user', ruleIds: ['other-user'], effect: 'deny' },
      { layer: 'application', ruleIds: ['app-gh'], effect: 'allow' },
    ]);
  });

  describe('resource constraints', () => {
    const scoped = [
      baseline[0]!,
      baseline[2]!,
      allow(
        'user-frontend',
        'user',
        'alice',
        { integration: 'github' },
        { resources: ['repo:acme/frontend', 'repo:acme/docs-*'] },
      ),
    ];

    it('allow only for the named resources, exact or by trailing-* prefix', () => {
      expect(decide(scoped, { ...request, resource: 'repo:acme/frontend' }).allowed).toBe(true);
      expect(decide(scoped, { ...request, resource: 'repo:acme/docs-site' }).allowed).toBe(true);
      expect(decide(scoped, { ...request, resource: 'repo:acme/frontend-old' })).toMatchObject({
        allowed: false,
        decidedBy: 'user',
      });
      expect(decide(scoped, { ...request, resource: 'repo:acme/backend' })).toMatchObject({
        allowed: false,
        decidedBy: 'user',
      });
    });

    it('a resource-scoped allow does not cover a request that names no resource (or an empty one)', () => {
      expect(decide(scoped)).toMatchObject({ allowed: false, decidedBy: 'user', reason: 'no_allow' });
      expect(decide(scoped, { ...request, resource: '' })).toMatchObject({
        allowed: false,
        decidedBy: 'user',
        reason: 'no_allow',
      });
    });

    it('a resource-scoped deny blocks its resources and requests that name no resource, but not others', () => {
      const rules = [
        ...baseline,
        deny('org-secret', 'org', 'acme', { integration: 'github' }, { resources: ['repo:acme/secret*'] }),
      ];
      expect(decide(rules, { ...request, resource: 'repo:acme/secret-plans' })).toMatchObject({
        allowed: false,
        decidedBy: 'org',
        reason: 'deny_rule',
      });
      expect(decide(rules)).toMatchObject({ allowed: false, decidedBy: 'org', reason: 'deny_rule' });
      expect(decide(rules, { ...request, resource: '' }).allowed).toBe(false);
      expect(decide(rules, { ...request, resource: 'repo:acme/frontend' }).allowed).toBe(true);
    });

    it("'*' alone matches any named resource but still not a missing one", () => {
      const rules = [
        baseline[0]!,
        baseline[2]!,
        allow('user-any', 'user', 'alice', { integration: 'github' }, { resources: ['*'] }),
      ];
      expect(decide(rules, { ...request, resource: 'anything' }).allowed).toBe(true);
      expect(decide(rules).allowed).toBe(false);
    });
  });

  it('scopes a rule to one application when it names one', () => {
    const rules = [
      baseline[0]!,
      baseline[2]!,
      allow('app-ok', 'application', 'other', { integration: 'github' }),
      allow('grant', 'user', 'alice', { integration: 'github' }, { application: 'bot' }),
    ];
    expect(decide(rules).allowed).toBe(true);
    expect(decide(rules, { ...request, applicationId: 'other' })).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'no_allow',
    });
  });

  it('denies an unknown capability even when every layer allows it explicitly', () => {
    const unknown = 'github:delete_repo';
    const rules = [
      ...baseline,
      ...(['org', 'user', 'application'] as const).map((layer) =>
        allow(`${layer}-del`, layer, { org: 'acme', user: 'alice', application: 'bot' }[layer], {
          capability: unknown,
        }),
      ),
    ];
    expect(decide(rules, { ...request, capability: unknown })).toEqual({
      allowed: false,
      decidedBy: null,
      reason: 'unknown_capability',
      matched: [],
    });
  });

  it('rejects ambiguous rule sets with every problem listed', () => {
    const bad = [
      allow('dup', 'org', 'acme', { integration: 'github' }),
      allow('dup', 'org', 'acme', { capability: 'no-colon' }),
      allow('x', 'user', 'alice', { integration: 'github' }, { resources: [] }),
      allow('y', 'user', 'alice', { integration: 'github' }, { resources: ['repo:*/frontend'] }),
      allow('z', 'application', 'bot', { integration: 'github' }, { application: 'someone-else' }),
    ];
    let error: unknown;
    try {
      compilePolicies(bad, { knownCapabilities: CATALOG });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('validation_failed');
    expect((error as AppError).problems.map((p) => p.path)).toEqual([
      'rules.1.id',
      'rules.1.target.capability',
      'rules.2.resources',
      'rules.3.resources.0',
      'rules.4.application',
    ]);
  });
});

describe('secure defaults', () => {
  const rules = [
    ...orgIntegrationRules('acme', ['spotify']),
    ...applicationDeclarationRules({ applicationId: 'dj', capabilities: ['spotify:read:playlists'] }),
    ...grantRules({ grantId: 'g1', userId: 'alice', applicationId: 'dj', scopes: ['spotify:read:playlists'] }),
  ];
  const read: PolicyRequest = {
    orgId: 'acme',
    userId: 'alice',
    applicationId: 'dj',
    capability: 'spotify:read:playlists',
  };

  it('allow exactly what the org enabled, the app declared and the user consented to', () => {
    expect(decide(rules, read)).toMatchObject({
      allowed: true,
      matched: [
        { layer: 'org', ruleIds: ['org:acme:integration:spotify'] },
        { layer: 'user', ruleIds: ['grant:g1:spotify:read:playlists'] },
        { layer: 'application', ruleIds: ['app:dj:capability:spotify:read:playlists'] },
      ],
    });
  });

  it('do not let a consent given to one app serve another app that declared the same scope', () => {
    const other = [...rules, ...applicationDeclarationRules({ applicationId: 'spy', integrations: ['spotify'] })];
    expect(decide(other, { ...read, applicationId: 'spy' })).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'no_allow',
    });
  });

  it('deny an integration the org has not enabled', () => {
    const withGithub = [
      ...rules,
      ...applicationDeclarationRules({ applicationId: 'dj', integrations: ['github'] }),
      ...grantRules({ grantId: 'g2', userId: 'alice', applicationId: 'dj', scopes: ['github:read:repos'] }),
    ];
    expect(decide(withGithub, { ...read, capability: 'github:read:repos' })).toMatchObject({
      allowed: false,
      decidedBy: 'org',
      reason: 'no_allow',
    });
  });
});

describe('approval_required', () => {
  const approve = { approvalRequired: true } as const;
  const destructive: PolicyRequest = { ...request, capability: 'github:create_issue' };

  it('an org allow asking for approval still allows, and names the layer and the rule', () => {
    const decision = decide([
      ...baseline,
      allow('org-approve', 'org', 'acme', { capability: 'github:create_issue' }, approve),
    ]);
    expect(decision).toMatchObject({
      allowed: true,
      reason: 'allowed',
      approval: { layer: 'org', ruleIds: ['org-approve'] },
    });
    // Other capabilities of the integration are not touched.
    expect(decide(baseline, { ...request, capability: 'github:read:repos' }).approval).toBeUndefined();
    expect(decide(baseline).approval).toBeUndefined();
  });

  it("a person's own rule asks for approval too; the org is named first when both ask", () => {
    const userAsks = allow('user-approve', 'user', 'alice', { capability: 'github:create_issue' }, approve);
    expect(decide([...baseline, userAsks], destructive).approval).toEqual({ layer: 'user', ruleIds: ['user-approve'] });
    const both = decide(
      [...baseline, userAsks, allow('org-approve', 'org', 'acme', { integration: 'github' }, approve)],
      destructive,
    );
    expect(both.approval).toEqual({ layer: 'org', ruleIds: ['org-approve'] });
    // Another person of the same org is not asked.
    expect(
      decide([...baseline, userAsks, allow('u-bob', 'user', 'bob', { integration: 'github' })], {
        ...destructive,
        userId: 'bob',
      }).approval,
    ).toBeUndefined();
  });

  it('deny still overrides, and an approval rule allows nothing a layer would not', () => {
    const asks = allow('org-approve', 'org', 'acme', { capability: 'github:create_issue' }, approve);
    const denied = decide([
      ...baseline,
      asks,
      deny('app-no', 'application', 'bot', { capability: 'github:create_issue' }),
    ]);
    expect(denied).toMatchObject({ allowed: false, decidedBy: 'application', reason: 'deny_rule' });
    expect(denied.approval).toBeUndefined();
    // Without the user's allow the approval rule of the org does not make the call allowed.
    const noUser = decide([asks, baseline[0]!, baseline[2]!]);
    expect(noUser).toMatchObject({ allowed: false, decidedBy: 'user', reason: 'no_allow' });
    expect(noUser.approval).toBeUndefined();
  });

  it('a resource-scoped approval asks only for its resources', () => {
    const rules = [
      ...baseline,
      allow('org-approve', 'org', 'acme', { capability: 'github:create_issue' }, { ...approve, resources: ['acme/*'] }),
    ];
    expect(decide(rules, { ...destructive, resource: 'acme/frontend' }).approval?.ruleIds).toEqual(['org-approve']);
    expect(decide(rules, { ...destructive, resource: 'other/repo' }).approval).toBeUndefined();
  });

  it('a resource-scoped approval holds a call that names no resource, allowed by another rule', () => {
    // Org: all of github allowed, deleting acme's repositories only with approval. A call whose
    // resource argument is missing or not a string (the gateway passes '') or a read decided
    // without a resource may touch acme/*: it is held, not let through unapproved.
    const rules = [
      ...baseline,
      allow('org-approve', 'org', 'acme', { capability: 'github:create_issue' }, { ...approve, resources: ['acme/*'] }),
    ];
    for (const resource of [undefined, '']) {
      const decision = decide(rules, { ...destructive, ...(resource === undefined ? {} : { resource }) });
      expect(decision).toMatchObject({ allowed: true, approval: { layer: 'org', ruleIds: ['org-approve'] } });
      // It asks, but it allows nothing it does not name: the allow is the integration rule's.
      expect(decision.matched.find((m) => m.layer === 'org')?.ruleIds).toEqual(['org-gh']);
    }
    // Alone, the scoped approval rule allows no call without a resource: refused, not held.
    const alone = decide(
      [
        baseline[1]!,
        baseline[2]!,
        allow(
          'org-approve',
          'org',
          'acme',
          { capability: 'github:create_issue' },
          { ...approve, resources: ['acme/*'] },
        ),
      ],
      destructive,
    );
    expect(alone).toMatchObject({ allowed: false, decidedBy: 'org', reason: 'no_allow' });
    expect(alone.approval).toBeUndefined();
    // The same holds in the user layer.
    const userRules = [
      ...baseline,
      allow('user-approve', 'user', 'alice', { integration: 'github' }, { ...approve, resources: ['acme/*'] }),
    ];
    expect(decide(userRules, destructive).approval).toEqual({ layer: 'user', ruleIds: ['user-approve'] });
    expect(decide(userRules, { ...destructive, resource: 'other/repo' }).approval).toBeUndefined();
  });

  it('is refused on deny rules and application rules, and must be a boolean', () => {
    const compile = (rules: PolicyRule[]) => () => compilePolicies(rules, { knownCapabilities: CATALOG });
    for (const rule of [
      deny('d', 'org', 'acme', { integration: 'github' }, approve),
      allow('a', 'application', 'bot', { integration: 'github' }, approve),
      { ...allow('b', 'org', 'acme', { integration: 'github' }), approvalRequired: 'yes' as unknown as boolean },
    ]) {
      expect(compile([rule])).toThrow(AppError);
    }
  });
});
