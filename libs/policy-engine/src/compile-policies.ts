import { integrationOf } from './capability.js';
import { compileResourcePatterns, matchesResource, type ResourceMatcher } from './resource-pattern.js';
import type { Decision, Layer, LayerMatch, PolicyRequest, PolicyRule } from './types.js';
import { assertValidRules } from './validate-rules.js';

export interface CompileOptions {
  /** The capability catalog. A request for anything else is denied whatever the rules say. */
  knownCapabilities: Iterable<string>;
}

export interface CompiledPolicySet {
  decide(request: PolicyRequest): Decision;
  /** How many rules were compiled; handy for revision logs. */
  readonly ruleCount: number;
}

interface CompiledRule {
  readonly id: string;
  /** undefined = any application. */
  readonly application: string | undefined;
  /** undefined = no resource constraint. */
  readonly resources: ResourceMatcher | undefined;
}

/**
 * Every rule of one (layer, subject) that can apply to one capability: its own
 * capability rules plus its integration-wide rules, in rule-set order.
 */
interface Bucket {
  readonly denies: CompiledRule[];
  readonly allows: CompiledRule[];
  /** True when no rule here has a resource or application condition. */
  simple: boolean;
  /** For simple buckets the layer's verdict is fixed, so it is built once, not per decision. */
  denyMatch: LayerMatch | undefined;
  allowMatch: LayerMatch | undefined;
}

/** subject → capability → bucket, one per layer. */
type LayerIndex = Map<string, Map<string, Bucket>>;

const UNKNOWN_CAPABILITY: Decision = Object.freeze({
  allowed: false,
  decidedBy: null,
  reason: 'unknown_capability',
  matched: Object.freeze([]),
});

/**
 * Compiles a rule set into per-layer indexes so that a decision is three map lookups per
 * layer plus a look at only the rules for that subject and capability.
 * Integration-wide rules are copied into the bucket of each catalog capability of that
 * integration at compile time, so the hot path never splits strings or merges lists.
 */
export function compilePolicies(rules: readonly PolicyRule[], options: CompileOptions): CompiledPolicySet {
  const catalog = [...options.knownCapabilities];
  assertValidRules(rules, catalog);
  const known = new Set(catalog);
  const capabilitiesByIntegration = new Map<string, string[]>();
  for (const capability of known) {
    const integration = integrationOf(capability)!;
    const list = capabilitiesByIntegration.get(integration) ?? [];
    list.push(capability);
    capabilitiesByIntegration.set(integration, list);
  }

  const indexes: Record<Layer, LayerIndex> = { org: new Map(), user: new Map(), application: new Map() };
  for (const rule of rules) {
    const compiled: CompiledRule = {
      id: rule.id,
      application: rule.application,
      resources: rule.resources ? compileResourcePatterns(rule.resources) : undefined,
    };
    const capabilities =
      'capability' in rule.target
        ? known.has(rule.target.capability) ? [rule.target.capability] : []
        : (capabilitiesByIntegration.get(rule.target.integration) ?? []);
    let bySubject = indexes[rule.layer].get(rule.subject);
    if (!bySubject) indexes[rule.layer].set(rule.subject, (bySubject = new Map()));
    for (const capability of capabilities) {
      let bucket = bySubject.get(capability);
      if (!bucket) {
        bucket = { denies: [], allows: [], simple: true, denyMatch: undefined, allowMatch: undefined };
        bySubject.set(capability, bucket);
      }
      (rule.effect === 'deny' ? bucket.denies : bucket.allows).push(compiled);
    }
  }
  for (const layer of ['org', 'user', 'application'] as const) {
    for (const bySubject of indexes[layer].values()) for (const bucket of bySubject.values()) seal(layer, bucket);
  }

  const org = indexes.org;
  const user = indexes.user;
  const application = indexes.application;
  return {
    ruleCount: rules.length,
    decide(request: PolicyRequest): Decision {
      const capability = request.capability;
      if (!known.has(capability)) return UNKNOWN_CAPABILITY;
      // '' names no resource; treating it as one would let it slip past resource-scoped denies.
      const resource = request.resource === '' ? undefined : request.resource;
      const appId = request.applicationId;
      const orgMatch = evaluate('org', org.get(request.orgId)?.get(capability), appId, resource);
      const userMatch = evaluate('user', user.get(request.userId)?.get(capability), appId, resource);
      const appMatch = evaluate('application', application.get(appId)?.get(capability), appId, resource);
      return combine(orgMatch, userMatch, appMatch);
    },
  };
}

function seal(layer: Layer, bucket: Bucket): void {
  const constrained = (rule: CompiledRule) => rule.resources !== undefined || rule.application !== undefined;
  bucket.simple = !bucket.denies.some(constrained) && !bucket.allows.some(constrained);
  if (!bucket.simple) return;
  if (bucket.denies.length > 0) bucket.denyMatch = freezeMatch(layer, bucket.denies.map((r) => r.id), 'deny');
  if (bucket.allows.length > 0) bucket.allowMatch = freezeMatch(layer, bucket.allows.map((r) => r.id), 'allow');
}

function freezeMatch(layer: Layer, ruleIds: string[], effect: 'allow' | 'deny'): LayerMatch {
  return Object.freeze({ layer, ruleIds: Object.freeze(ruleIds), effect });
}

/** One layer's verdict: its matching denies, else its matching allows, else undefined (no allow). */
function evaluate(
  layer: Layer,
  bucket: Bucket | undefined,
  applicationId: string,
  resource: string | undefined,
): LayerMatch | undefined {
  if (!bucket) return undefined;
  if (bucket.simple) return bucket.denyMatch ?? bucket.allowMatch;
  let ids: string[] | undefined;
  for (const rule of bucket.denies) {
    if (rule.application !== undefined && rule.application !== applicationId) continue;
    // A request that names no resource may touch any, so a resource-scoped deny covers it.
    if (rule.resources === undefined || resource === undefined || matchesResource(rule.resources, resource)) {
      (ids ??= []).push(rule.id);
    }
  }
  if (ids) return { layer, ruleIds: ids, effect: 'deny' };
  for (const rule of bucket.allows) {
    if (rule.application !== undefined && rule.application !== applicationId) continue;
    // ...and a resource-scoped allow does not, since it only vouches for the named resources.
    if (rule.resources === undefined || (resource !== undefined && matchesResource(rule.resources, resource))) {
      (ids ??= []).push(rule.id);
    }
  }
  return ids ? { layer, ruleIds: ids, effect: 'allow' } : undefined;
}

function combine(org: LayerMatch | undefined, user: LayerMatch | undefined, app: LayerMatch | undefined): Decision {
  const matched: LayerMatch[] = [];
  if (org) matched.push(org);
  if (user) matched.push(user);
  if (app) matched.push(app);
  const refusing = refusal(org, 'org') ?? refusal(user, 'user') ?? refusal(app, 'application');
  if (!refusing) return { allowed: true, decidedBy: null, reason: 'allowed', matched };
  return { allowed: false, decidedBy: refusing.layer, reason: refusing.reason, matched };
}

function refusal(match: LayerMatch | undefined, layer: Layer): { layer: Layer; reason: 'deny_rule' | 'no_allow' } | undefined {
  if (!match) return { layer, reason: 'no_allow' };
  return match.effect === 'deny' ? { layer, reason: 'deny_rule' } : undefined;
}
