import { compilePolicies, type PolicyRule } from '@context-gateway/policy-engine';
import { describe, expect, it } from '@jest/globals';

import type { ApplicationCaller } from '../auth/auth.types.js';
import { awaitsConsent, resourceOf, tokenCovers } from './mcp-decisions.js';
import { gatewayToolName, type McpServerView, splitGatewayToolName, unwrapUri, wrapUri } from './mcp-server-view.js';

// Gateway mode's own decisions over the policy engine's: which refusals only await the
// person's consent, what an access token reaches, which argument is the resource, and the
// names that route a call back to its server.
const ORG = 'org-1';
const APP = 'app-1';
const USER = 'user-1';
const CAP = 'github:create_issue';

function decide(rules: PolicyRule[], resource?: string) {
  return compilePolicies(rules, { knownCapabilities: [CAP] }).decide({
    orgId: ORG,
    applicationId: APP,
    userId: USER,
    capability: CAP,
    ...(resource === undefined ? {} : { resource }),
  });
}

const allow = (layer: PolicyRule['layer'], subject: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({
  id: `${layer}-allow-${Math.random()}`,
  layer,
  subject,
  effect: 'allow',
  target: { integration: 'github' },
  ...extra,
});
const deny = (layer: PolicyRule['layer'], subject: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({
  ...allow(layer, subject, extra),
  effect: 'deny',
  target: { capability: CAP },
});

describe('awaitsConsent', () => {
  it('holds only when the org and the application allow and the person has simply not allowed yet', () => {
    expect(awaitsConsent(decide([allow('org', ORG), allow('application', APP)]))).toBe(true);
    // Allowed outright: not "awaiting" anything.
    expect(awaitsConsent(decide([allow('org', ORG), allow('application', APP), allow('user', USER)]))).toBe(false);
    // The person said no: never overridden by the connect flow.
    expect(awaitsConsent(decide([allow('org', ORG), allow('application', APP), deny('user', USER)]))).toBe(false);
    // The org or the application does not allow it: refused, whatever the person does.
    expect(awaitsConsent(decide([allow('application', APP)]))).toBe(false);
    expect(awaitsConsent(decide([allow('org', ORG)]))).toBe(false);
    expect(awaitsConsent(decide([allow('org', ORG), allow('application', APP), deny('org', ORG)]))).toBe(false);
  });

  it('never lets a resource-scoped deny be dodged by leaving the resource out', () => {
    const rules = [
      allow('org', ORG),
      allow('application', APP),
      allow('user', USER),
      deny('application', APP, { resources: ['acme/secret*'] }),
    ];
    expect(decide(rules, 'acme/secret-plans')).toMatchObject({ allowed: false, decidedBy: 'application' });
    expect(decide(rules, 'acme/frontend')).toMatchObject({ allowed: true });
    // No resource (the argument left out, or resourceOf's empty one): the scoped deny still holds.
    expect(decide(rules)).toMatchObject({ allowed: false, decidedBy: 'application' });
    expect(decide(rules, '')).toMatchObject({ allowed: false, decidedBy: 'application' });
  });

  it('never lets a resource-scoped approval be dodged by leaving the resource out or mistyping it', () => {
    // Org: github allowed; create_issue on acme/* only with the person's approval.
    const rules = [
      allow('org', ORG),
      allow('org', ORG, {
        id: 'org-approve',
        target: { capability: CAP },
        resources: ['acme/*'],
        approvalRequired: true,
      }),
      allow('application', APP),
      allow('user', USER),
    ];
    const server = { resourceArguments: { create_issue: 'repo' } } as unknown as McpServerView;
    const held = { allowed: true, approval: { layer: 'org', ruleIds: ['org-approve'] } };
    expect(decide(rules, resourceOf(server, 'create_issue', { repo: 'acme/x' }))).toMatchObject(held);
    // The argument missing, or an array where a string belongs: held all the same.
    expect(decide(rules, resourceOf(server, 'create_issue', {}))).toMatchObject(held);
    expect(decide(rules, resourceOf(server, 'create_issue', { repo: ['acme/x'] }))).toMatchObject(held);
    // resources/read decides without a resource: held too.
    expect(decide(rules)).toMatchObject(held);
    // Another repository is what the approval rule does not cover.
    expect(decide(rules, resourceOf(server, 'create_issue', { repo: 'other/x' })).approval).toBeUndefined();
  });
});

describe('tokenCovers', () => {
  const caller = (tokenScopes?: string[]): ApplicationCaller => ({
    kind: 'application',
    orgId: ORG,
    applicationId: APP,
    apiKeyId: '',
    onBehalfOf: USER,
    ...(tokenScopes ? { tokenScopes } : {}),
  });
  it('lets an access token reach a tool through <integration>:tools or the capability itself, nothing else', () => {
    expect(tokenCovers(caller(['github:tools']), 'github', CAP)).toBe(true);
    expect(tokenCovers(caller([CAP]), 'github', CAP)).toBe(true);
    expect(tokenCovers(caller(['github:read:repos', 'spotify:tools']), 'github', CAP)).toBe(false);
    expect(tokenCovers(caller([]), 'github', CAP)).toBe(false);
    // An API key carries no scopes: policy alone decides.
    expect(tokenCovers(caller(), 'github', CAP)).toBe(true);
  });
});

describe('resourceOf', () => {
  const server = { resourceArguments: { create_issue: 'repo' } } as unknown as McpServerView;
  it('reads the named argument, and makes a missing or mistyped one the empty resource', () => {
    expect(resourceOf(server, 'create_issue', { repo: 'acme/frontend' })).toBe('acme/frontend');
    expect(resourceOf(server, 'create_issue', {})).toBe('');
    expect(resourceOf(server, 'create_issue', { repo: ['acme/frontend'] })).toBe('');
    expect(resourceOf(server, 'create_issue', undefined)).toBe('');
    expect(resourceOf(server, 'list_repos', { repo: 'acme/frontend' })).toBeUndefined();
    expect(resourceOf(server, '__proto__', {})).toBeUndefined();
  });
});

describe('names at /mcp', () => {
  it('splits tool and prompt names at the first dot, integration names holding none', () => {
    expect(splitGatewayToolName(gatewayToolName('github', 'list.repos'))).toEqual({
      integration: 'github',
      tool: 'list.repos',
    });
    for (const bad of ['github', '.list', 'github.', '']) expect(splitGatewayToolName(bad)).toBeUndefined();
  });

  it('wraps resource URIs so that a read finds its server, and unwraps only what it wrapped', () => {
    expect(unwrapUri(wrapUri('github', 'github://user+x'))).toEqual({ integration: 'github', uri: 'github://user+x' });
    expect(unwrapUri('github://user')).toBeUndefined();
    expect(unwrapUri('+github://user')).toBeUndefined();
    expect(unwrapUri('github+')).toBeUndefined();
  });
});
