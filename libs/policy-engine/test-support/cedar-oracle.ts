/**
 * The policy semantics written a second time, in Cedar, and evaluated by Cedar's own
 * authorizer (@cedar-policy/cedar-wasm). Tests compare the engine against it; nothing in
 * the runtime path imports this file (Cedar is a devDependency only).
 *
 * Encoding (one Cedar evaluation per layer, AND of the three):
 * - one policy set holds every rule: allow → `permit`, deny → `forbid`, with the rule's
 *   subject as the principal scope, typed by layer (`Org::"o1"`, `User::"u1"`,
 *   `Application::"a1"`), so evaluating with principal = the layer's subject makes only
 *   that layer's rules applicable. Cedar then gives us, per layer, exactly our semantics:
 *   forbid overrides permit, and no permit means deny.
 * - capabilities are actions `Action::"cap:<capability>"` whose parents are
 *   `Action::"integration:<integration>"` and `Action::"catalog"`; an integration-wide
 *   rule is `action in Action::"integration:<name>"`. Only catalog capabilities get an
 *   entity, and a guard `forbid ... unless { action in Action::"catalog" }` denies the rest.
 * - the resource string and the calling application travel in the context; resource
 *   patterns become `==` (exact) or `like "prefix*"`. A constrained permit requires
 *   `context has resource`; a constrained forbid also fires when there is none.
 */
import type { AuthorizationAnswer, EntityJson, StatefulAuthorizationCall } from '@cedar-policy/cedar-wasm/nodejs';

import type { Decision, Layer, LayerMatch, PolicyRequest, PolicyRule } from '../src/index.js';

const ENTITY_TYPE: Record<Layer, string> = { org: 'Org', user: 'User', application: 'Application' };
const LAYER_ORDER: Layer[] = ['org', 'user', 'application'];

/** A Cedar string literal; `like` patterns additionally escape `*` in their literal part. */
function cedarString(value: string): string {
  let out = '"';
  for (const ch of value) {
    // A for-of step is one whole code point, never an empty string.
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

function likePattern(prefix: string): string {
  return cedarString(prefix).slice(0, -1).replaceAll('*', '\\*') + '*"';
}

function resourceCondition(patterns: readonly string[]): string {
  return patterns
    .map((p) =>
      p.endsWith('*')
        ? `context.resource like ${likePattern(p.slice(0, -1))}`
        : `context.resource == ${cedarString(p)}`,
    )
    .join(' || ');
}

function ruleToCedar(rule: PolicyRule): string {
  const principal = `principal == ${ENTITY_TYPE[rule.layer]}::${cedarString(rule.subject)}`;
  const action =
    'capability' in rule.target
      ? `action == Action::${cedarString('cap:' + rule.target.capability)}`
      : `action in Action::${cedarString('integration:' + rule.target.integration)}`;
  const conditions: string[] = [];
  if (rule.application !== undefined)
    conditions.push(`when { context.application == ${cedarString(rule.application)} }`);
  if (rule.resources !== undefined) {
    const anyOf = resourceCondition(rule.resources);
    conditions.push(
      rule.effect === 'allow'
        ? `when { context has resource && (${anyOf}) }`
        : `when { !(context has resource) || (${anyOf}) }`,
    );
  }
  const effect = rule.effect === 'allow' ? 'permit' : 'forbid';
  return `${effect} (${principal}, ${action}, resource)${conditions.map((c) => ' ' + c).join('')};`;
}

const CATALOG_GUARD = 'forbid (principal, action, resource) unless { action in Action::"catalog" };';

/** The whole rule set as Cedar text; policy i (Cedar names it `policy<i>`) is rule i, the guard comes last. */
export function policySetText(rules: readonly PolicyRule[]): string {
  return [...rules.map(ruleToCedar), CATALOG_GUARD].join('\n');
}

/** Everything Cedar needs for one request: the policy set and one authorization call per layer. */
export interface CedarQuery {
  policies: string;
  calls: Omit<StatefulAuthorizationCall, 'preparsedPolicySetId'>[];
}

export function toCedarQuery(
  rules: readonly PolicyRule[],
  request: PolicyRequest,
  knownCapabilities: ReadonlySet<string>,
): CedarQuery {
  const entities = actionEntities(request.capability, knownCapabilities);
  const context = {
    application: request.applicationId,
    // '' names no resource (README.md); the engine and the oracle must agree on that.
    ...(request.resource ? { resource: request.resource } : {}),
  };
  return {
    policies: policySetText(rules),
    calls: LAYER_ORDER.map((layer) => ({
      principal: { type: ENTITY_TYPE[layer], id: subjectOf(layer, request) },
      action: { type: 'Action', id: 'cap:' + request.capability },
      resource: { type: 'Resource', id: 'request' },
      context,
      entities,
    })),
  };
}

function subjectOf(layer: Layer, request: PolicyRequest): string {
  return layer === 'org' ? request.orgId : layer === 'user' ? request.userId : request.applicationId;
}

/** Only the requested action's entity: that is all Cedar needs to resolve `action in ...`. */
function actionEntities(capability: string, known: ReadonlySet<string>): EntityJson[] {
  if (!known.has(capability)) return [];
  const colon = capability.indexOf(':');
  const integration = colon < 0 ? capability : capability.slice(0, colon);
  return [
    {
      uid: { type: 'Action', id: 'cap:' + capability },
      attrs: {},
      parents: [
        { type: 'Action', id: 'integration:' + integration },
        { type: 'Action', id: 'catalog' },
      ],
    },
  ];
}

/** Reads Cedar's three per-layer answers back into a Decision (policy<i> is rule i; the guard is last). */
export function fromCedarAnswers(rules: readonly PolicyRule[], answers: readonly AuthorizationAnswer[]): Decision {
  const layers = LAYER_ORDER.map((layer, i) => {
    const answer = answers[i];
    if (answer === undefined) throw new Error(`Cedar gave no answer for the ${layer} layer`);
    if (answer.type !== 'success') throw new Error(`Cedar failed: ${JSON.stringify(answer.errors)}`);
    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length > 0) throw new Error(`Cedar policy errors: ${JSON.stringify(diagnostics.errors)}`);
    const indexes = diagnostics.reason.map((id) => Number(id.replace('policy', ''))).sort((a, b) => a - b);
    // The guard policy's index is rules.length: it names no rule.
    const ruleIds: string[] = [];
    for (const n of indexes) {
      const rule = rules[n];
      if (rule !== undefined) ruleIds.push(rule.id);
    }
    const match: LayerMatch | undefined =
      ruleIds.length === 0 ? undefined : { layer, ruleIds, effect: decision === 'allow' ? 'allow' : 'deny' };
    return { layer, match, unknownCapability: indexes.includes(rules.length) };
  });
  if (layers.some((l) => l.unknownCapability)) {
    return { allowed: false, decidedBy: null, reason: 'unknown_capability', matched: [] };
  }
  const matched: LayerMatch[] = layers.flatMap((l) => (l.match ? [l.match] : []));
  const refusing = layers.find((l) => !l.match || l.match.effect === 'deny');
  if (!refusing) return { allowed: true, decidedBy: null, reason: 'allowed', matched };
  return { allowed: false, decidedBy: refusing.layer, reason: refusing.match ? 'deny_rule' : 'no_allow', matched };
}
