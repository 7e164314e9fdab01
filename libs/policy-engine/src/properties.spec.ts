import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { compilePolicies, type Layer, LAYERS, type PolicyRequest, type PolicyRule } from './index.js';

const CATALOG = ['github:create_issue', 'github:read:repos', 'spotify:read:playlists', 'spotify:play'];
const UNKNOWN = ['github:delete_repo', 'slack:post'];
const SUBJECTS: Record<Layer, string[]> = { org: ['o1', 'o2'], user: ['u1', 'u2'], application: ['a1', 'a2'] };
const PATTERNS = ['repo:acme/frontend', 'repo:acme/*', 'repo:other/x', '*'];
const RESOURCES = ['repo:acme/frontend', 'repo:acme/backend', 'repo:other/x', ''];

// A tiny world so that random rules and requests collide often.
const capability = fc.constantFrom(...CATALOG, ...UNKNOWN);
const request: fc.Arbitrary<PolicyRequest> = fc.record(
  {
    orgId: fc.constantFrom(...SUBJECTS.org),
    userId: fc.constantFrom(...SUBJECTS.user),
    applicationId: fc.constantFrom(...SUBJECTS.application),
    capability: fc.constantFrom(...CATALOG),
    resource: fc.constantFrom(...RESOURCES),
  },
  { requiredKeys: ['orgId', 'userId', 'applicationId', 'capability'] },
);

let ruleCounter = 0;
function ruleOf(layer: fc.Arbitrary<Layer>, effect: fc.Arbitrary<'allow' | 'deny'>): fc.Arbitrary<PolicyRule> {
  return layer.chain((l) =>
    fc
      .record(
        {
          subject: fc.constantFrom(...SUBJECTS[l]),
          effect,
          target: fc.oneof(
            capability.map((c) => ({ capability: c })),
            fc.constantFrom('github', 'spotify', 'slack').map((i) => ({ integration: i })),
          ),
          resources: fc.uniqueArray(fc.constantFrom(...PATTERNS), { minLength: 1, maxLength: 2 }),
          application: fc.constantFrom(...SUBJECTS.application),
        },
        { requiredKeys: ['subject', 'effect', 'target'] },
      )
      .map((r): PolicyRule => {
        const rule: PolicyRule = { id: `r${ruleCounter++}`, layer: l, ...r };
        if (l === 'application' && rule.application !== undefined) rule.application = rule.subject;
        return rule;
      }),
  );
}
const anyLayer = fc.constantFrom(...LAYERS);
const anyRule = ruleOf(anyLayer, fc.constantFrom('allow', 'deny'));
const ruleSet = fc.array(anyRule, { maxLength: 12 });

const decide = (rules: PolicyRule[], req: PolicyRequest) =>
  compilePolicies(rules, { knownCapabilities: CATALOG }).decide(req);

describe('policy properties', () => {
  it('adding a deny never widens access', () => {
    fc.assert(
      fc.property(ruleSet, ruleOf(anyLayer, fc.constant('deny')), request, (rules, extra, req) => {
        if (decide([...rules, extra], req).allowed) expect(decide(rules, req).allowed).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('removing an allow never widens access', () => {
    fc.assert(
      fc.property(ruleSet, fc.nat(), request, (rules, pick, req) => {
        const allows = rules.filter((r) => r.effect === 'allow');
        fc.pre(allows.length > 0);
        const removed = allows[pick % allows.length]!;
        if (
          decide(
            rules.filter((r) => r !== removed),
            req,
          ).allowed
        )
          expect(decide(rules, req).allowed).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('an unknown capability is denied whatever the rules say', () => {
    fc.assert(
      fc.property(ruleSet, request, fc.constantFrom(...UNKNOWN, 'nocolon', ''), (rules, req, unknown) => {
        expect(decide(rules, { ...req, capability: unknown })).toEqual({
          allowed: false,
          decidedBy: null,
          reason: 'unknown_capability',
          matched: [],
        });
      }),
      { numRuns: 1000 },
    );
  });

  it('allows added to other layers never grant while one layer has no allow', () => {
    const emptyLayerAndAddedAllows = anyLayer.chain((empty) =>
      fc.tuple(
        fc.constant(empty),
        fc.array(ruleOf(fc.constantFrom(...LAYERS.filter((l) => l !== empty)), fc.constant('allow')), { maxLength: 6 }),
      ),
    );
    fc.assert(
      fc.property(ruleSet, emptyLayerAndAddedAllows, request, (rules, [empty, added], req) => {
        const withoutAllows = rules.filter((r) => !(r.layer === empty && r.effect === 'allow'));
        expect(decide([...withoutAllows, ...added], req).allowed).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('adding an allow for exactly the request in every layer grants unless a deny matches', () => {
    // Guards the other properties against an engine that simply denies everything.
    fc.assert(
      fc.property(ruleSet, request, (rules, req) => {
        const subjects = { org: req.orgId, user: req.userId, application: req.applicationId };
        const granting = LAYERS.map((layer): PolicyRule => ({
          id: `grant-${layer}`,
          layer,
          subject: subjects[layer],
          effect: 'allow',
          target: { capability: req.capability },
        }));
        const decision = decide([...rules, ...granting], req);
        const anyDeny = decision.matched.some((m) => m.effect === 'deny');
        expect(decision.allowed).toBe(!anyDeny);
      }),
      { numRuns: 2000 },
    );
  });
});
