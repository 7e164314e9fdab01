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
  /** An allow rule that asks for the person's approval of each call it allows. */
  readonly approval: boolean;
}

/**
 * Every rule of one (layer, subject) that can apply to one capability: its own
 * capability rules plus its integration-wide rules, in rule-set order.
 */
interface Bucket {
  readonly denies: CompiledRule[];
  readonly allows: CompiledRule[];
  /**
   * Without resource constraints a layer's verdict depends only on the calling app, so it
   * is built once at compile time: per app named by a rule here, plus one for every other
   * app. Grant-derived user rules all name an app, so this is the common case.
   */
  precomputed: boolean;
  verdictByApp: Map<string, LayerMatch | null>;
  otherApps: LayerMatch | undefined;
  /** A grant's bucket names a single app; keeping it inline saves a map lookup (a cache miss). */
  soleApp: string | undefined;
  soleVerdict: LayerMatch | undefined;
}

/**
 * subject → capability number → bucket, one per layer. Capabilities are numbered at
 * compile time so that a decision hashes the capability string once, not four times.
 */
type LayerIndex = Map<string, Map<number, Bucket>>;

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
  const known = new Map<string, number>();
  for (const capability of catalog) if (!known.has(capability)) known.set(capability, known.size);
  // Capability numbers by integration, for rules that target a whole integration.
  const capabilitiesByIntegration = new Map<string, number[]>();
  for (const [capability, number] of known) {
    const integration = integrationOf(capability);
    // assertValidRules has checked the catalog; a name without an integration joins none.
    if (integration === undefined) continue;
    const list = capabilitiesByIntegration.get(integration) ?? [];
    list.push(number);
    capabilitiesByIntegration.set(integration, list);
  }

  const indexes: Record<Layer, LayerIndex> = { org: new Map(), user: new Map(), application: new Map() };
  for (const rule of rules) {
    const compiled: CompiledRule = {
      id: rule.id,
      application: rule.application,
      resources: rule.resources ? compileResourcePatterns(rule.resources) : undefined,
      approval: rule.approvalRequired === true,
    };
    let capabilities: readonly number[];
    if ('capability' in rule.target) {
      const number = known.get(rule.target.capability);
      capabilities = number === undefined ? [] : [number];
    } else capabilities = capabilitiesByIntegration.get(rule.target.integration) ?? [];
    let bySubject = indexes[rule.layer].get(rule.subject);
    if (!bySubject) indexes[rule.layer].set(rule.subject, (bySubject = new Map<number, Bucket>()));
    for (const number of capabilities) {
      let bucket = bySubject.get(number);
      if (!bucket) {
        bucket = {
          denies: [],
          allows: [],
          precomputed: false,
          verdictByApp: new Map(),
          otherApps: undefined,
          soleApp: undefined,
          soleVerdict: undefined,
        };
        bySubject.set(number, bucket);
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
      const capability = known.get(request.capability);
      if (capability === undefined) return UNKNOWN_CAPABILITY;
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
  const all = [...bucket.denies, ...bucket.allows];
  if (all.some((rule) => rule.resources !== undefined)) return;
  bucket.precomputed = true;
  const freeze = (match: LayerMatch | undefined) =>
    match &&
    Object.freeze({
      layer,
      ruleIds: Object.freeze(match.ruleIds),
      effect: match.effect,
      ...(match.approvalRuleIds ? { approvalRuleIds: Object.freeze(match.approvalRuleIds) } : {}),
    });
  // An app no rule here names: only the unscoped rules apply.
  bucket.otherApps = freeze(scan(layer, bucket, undefined, undefined));
  for (const rule of all) {
    if (rule.application !== undefined && !bucket.verdictByApp.has(rule.application)) {
      bucket.verdictByApp.set(rule.application, freeze(scan(layer, bucket, rule.application, undefined)) ?? null);
    }
  }
  if (bucket.verdictByApp.size === 1) {
    for (const [app, verdict] of bucket.verdictByApp) {
      bucket.soleApp = app;
      bucket.soleVerdict = verdict ?? undefined;
    }
  }
}

/** One layer's verdict: its matching denies, else its matching allows, else undefined (no allow). */
function evaluate(
  layer: Layer,
  bucket: Bucket | undefined,
  applicationId: string,
  resource: string | undefined,
): LayerMatch | undefined {
  if (!bucket) return undefined;
  if (bucket.precomputed) {
    if (bucket.soleApp !== undefined) return applicationId === bucket.soleApp ? bucket.soleVerdict : bucket.otherApps;
    const verdict = bucket.verdictByApp.get(applicationId);
    // null = this app is named here but gets no allow; undefined = not named at all.
    return verdict === undefined ? bucket.otherApps : (verdict ?? undefined);
  }
  return scan(layer, bucket, applicationId, resource);
}

function scan(
  layer: Layer,
  bucket: Bucket,
  applicationId: string | undefined,
  resource: string | undefined,
): LayerMatch | undefined {
  let ids: string[] | undefined;
  for (const rule of bucket.denies) {
    if (rule.application !== undefined && rule.application !== applicationId) continue;
    // A request that names no resource may touch any, so a resource-scoped deny covers it.
    if (rule.resources === undefined || resource === undefined || matchesResource(rule.resources, resource)) {
      (ids ??= []).push(rule.id);
    }
  }
  if (ids) return { layer, ruleIds: ids, effect: 'deny' };
  let approvals: string[] | undefined;
  for (const rule of bucket.allows) {
    if (rule.application !== undefined && rule.application !== applicationId) continue;
    const matches = resource !== undefined && rule.resources !== undefined && matchesResource(rule.resources, resource);
    // ...and a resource-scoped allow does not, since it only vouches for the named resources.
    if (rule.resources === undefined || matches) (ids ??= []).push(rule.id);
    // An approval is a restriction, so it is read like a deny: a call naming no resource may
    // touch the scoped ones and is held too (it is allowed only if another rule allows it).
    if (rule.approval && (rule.resources === undefined || resource === undefined || matches))
      (approvals ??= []).push(rule.id);
  }
  if (!ids) return undefined;
  return approvals
    ? { layer, ruleIds: ids, effect: 'allow', approvalRuleIds: approvals }
    : { layer, ruleIds: ids, effect: 'allow' };
}

function combine(org: LayerMatch | undefined, user: LayerMatch | undefined, app: LayerMatch | undefined): Decision {
  const matched: LayerMatch[] = [];
  if (org) matched.push(org);
  if (user) matched.push(user);
  if (app) matched.push(app);
  if (org === undefined || org.effect === 'deny') return refused('org', org, matched);
  if (user === undefined || user.effect === 'deny') return refused('user', user, matched);
  if (app === undefined || app.effect === 'deny') return refused('application', app, matched);
  // Deny has had its say: an approval only ever narrows an allowed call (org asks first).
  const asking = org.approvalRuleIds ? org : user.approvalRuleIds ? user : undefined;
  if (asking?.approvalRuleIds)
    return {
      allowed: true,
      decidedBy: null,
      reason: 'allowed',
      matched,
      approval: { layer: asking.layer, ruleIds: asking.approvalRuleIds },
    };
  return { allowed: true, decidedBy: null, reason: 'allowed', matched };
}

function refused(layer: Layer, match: LayerMatch | undefined, matched: LayerMatch[]): Decision {
  return { allowed: false, decidedBy: layer, reason: match ? 'deny_rule' : 'no_allow', matched };
}
