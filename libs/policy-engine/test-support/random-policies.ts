/**
 * Random rule sets and requests over a deliberately tiny world (a few orgs, users, apps,
 * capabilities, resources), so that random rules actually collide with random requests
 * and every outcome — allowed, each layer denying, unknown capability — shows up often.
 */
import type { Layer, PolicyRequest, PolicyRule } from '../src/index.js';

export const WORLD = {
  orgs: ['o1', 'o2'],
  users: ['u1', 'u2'],
  apps: ['a1', 'a2', 'a3'],
  knownCapabilities: ['github:create_issue', 'github:read:repos', 'spotify:read:playlists', 'spotify:play'],
  /** Unknown to the catalog: one of a known integration, one of an unknown integration. */
  unknownCapabilities: ['github:delete_repo', 'slack:post'],
  integrations: ['github', 'spotify', 'slack'],
  resourcePatterns: ['repo:acme/frontend', 'repo:acme/*', 'repo:acme/front*', 'repo:other/x', '*', 'repo:acme/backend'],
  /** '' and undefined both mean "no resource"; 'repo:acme/*' as a request is a literal name. */
  // null: a request that names no resource.
  requestResources: [null, '', 'repo:acme/frontend', 'repo:acme/backend', 'repo:other/x', 'repo:acme/*', 'playlist:1'],
} as const;

/** mulberry32: tiny, fast and seedable, so a failing case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class RandomPolicies {
  private nextId = 0;
  constructor(private readonly random: () => number) {}

  private pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.random() * items.length)];
    if (item === undefined) throw new Error('picked from an empty list');
    return item;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  request(): PolicyRequest {
    const capabilities = [...WORLD.knownCapabilities, ...WORLD.knownCapabilities, ...WORLD.unknownCapabilities];
    const resource = this.pick(WORLD.requestResources);
    return {
      orgId: this.pick(WORLD.orgs),
      userId: this.pick(WORLD.users),
      applicationId: this.pick(WORLD.apps),
      capability: this.pick(capabilities),
      ...(resource === null ? {} : { resource }),
    };
  }

  /** A rule that, more often than chance, concerns `focus` (so it matches or nearly matches). */
  rule(focus: PolicyRequest, overrides: Partial<PolicyRule> = {}): PolicyRule {
    const layer: Layer = overrides.layer ?? this.pick(['org', 'user', 'application'] as const);
    const focusSubject = layer === 'org' ? focus.orgId : layer === 'user' ? focus.userId : focus.applicationId;
    const domain = layer === 'org' ? WORLD.orgs : layer === 'user' ? WORLD.users : WORLD.apps;
    const subject = this.chance(0.75) ? focusSubject : this.pick(domain);
    const capability = this.chance(0.6)
      ? focus.capability
      : this.pick([...WORLD.knownCapabilities, ...WORLD.unknownCapabilities]);
    const target = this.chance(0.6)
      ? { capability }
      : { integration: this.chance(0.7) ? integrationPart(capability) : this.pick(WORLD.integrations) };
    const rule: PolicyRule = {
      id: `r${this.nextId++}`,
      layer,
      subject,
      effect: this.chance(0.7) ? 'allow' : 'deny',
      target,
    };
    if (this.chance(0.35)) {
      const count = 1 + Math.floor(this.random() * 2);
      rule.resources = Array.from({ length: count }, () => this.pick(WORLD.resourcePatterns));
    }
    if (layer !== 'application' && this.chance(0.2)) rule.application = this.pick(WORLD.apps);
    if (layer === 'application' && this.chance(0.1)) rule.application = subject;
    return { ...rule, ...overrides };
  }

  /** 0–11 rules, biased towards rules about `focus`, most of the time with an allow in every layer. */
  ruleSet(focus: PolicyRequest): PolicyRule[] {
    const rules: PolicyRule[] = [];
    if (this.chance(0.7)) {
      for (const layer of ['org', 'user', 'application'] as const)
        rules.push(this.rule(focus, { layer, effect: 'allow' }));
    }
    const extra = Math.floor(this.random() * 9);
    for (let i = 0; i < extra; i++) rules.push(this.rule(focus));
    // Shuffle so the forced allows are not always first (rule order shows up in explanations).
    for (let i = rules.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const a = rules[i];
      const b = rules[j];
      if (a === undefined || b === undefined) throw new Error('shuffle index out of range');
      rules[i] = b;
      rules[j] = a;
    }
    return rules;
  }
}

/** What precedes the first ':' (the whole string when there is none, as `split` gives). */
function integrationPart(capability: string): string {
  const colon = capability.indexOf(':');
  return colon < 0 ? capability : capability.slice(0, colon);
}
