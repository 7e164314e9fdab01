import { AppError, type FieldProblem } from '@context-gateway/errors';

import { isCapability, isIntegration } from './capability.js';
import { resourcePatternProblem } from './resource-pattern.js';
import { LAYERS, type PolicyRule } from './types.js';

const EFFECTS = new Set(['allow', 'deny']);
const LAYER_SET = new Set<string>(LAYERS);

/**
 * Rejects rule sets whose meaning would be ambiguous instead of guessing: a typo in a
 * rule must not silently widen or narrow access. Rules pointing at capabilities that are
 * not (or no longer) in the catalog are accepted; they can never match anything.
 */
export function assertValidRules(rules: readonly PolicyRule[], knownCapabilities: Iterable<string>): void {
  const problems: FieldProblem[] = [];
  const ids = new Set<string>();
  rules.forEach((rule, index) => {
    const at = (field: string) => `rules.${index}.${field}`;
    if (typeof rule.id !== 'string' || rule.id.length === 0)
      problems.push({ path: at('id'), message: 'must be a non-empty string' });
    else if (ids.has(rule.id)) problems.push({ path: at('id'), message: `duplicate rule id '${rule.id}'` });
    else ids.add(rule.id);
    if (!LAYER_SET.has(rule.layer))
      problems.push({ path: at('layer'), message: `must be one of ${LAYERS.join(', ')}` });
    if (!EFFECTS.has(rule.effect)) problems.push({ path: at('effect'), message: 'must be allow or deny' });
    if (typeof rule.subject !== 'string' || rule.subject.length === 0)
      problems.push({ path: at('subject'), message: 'must be a non-empty string' });
    problems.push(...targetProblems(rule, at));
    if (rule.resources !== undefined) {
      if (!Array.isArray(rule.resources) || rule.resources.length === 0) {
        // An empty list would read as "no resource at all" to some and "any" to others.
        problems.push({ path: at('resources'), message: 'must be omitted or a non-empty list' });
      } else {
        rule.resources.forEach((pattern, i) => {
          const problem = resourcePatternProblem(pattern);
          if (problem) problems.push({ path: at(`resources.${i}`), message: problem });
        });
      }
    }
    if (rule.approvalRequired !== undefined) {
      // Approval narrows what a rule allows; on a deny it would mean nothing, and an
      // application asking itself for approval is the application's own business.
      if (typeof rule.approvalRequired !== 'boolean')
        problems.push({ path: at('approvalRequired'), message: 'must be a boolean' });
      else if (rule.approvalRequired && rule.effect !== 'allow')
        problems.push({ path: at('approvalRequired'), message: 'only an allow rule can ask for approval' });
      else if (rule.approvalRequired && rule.layer === 'application')
        problems.push({ path: at('approvalRequired'), message: 'only org and user rules can ask for approval' });
    }
    if (rule.application !== undefined) {
      if (typeof rule.application !== 'string' || rule.application.length === 0) {
        problems.push({ path: at('application'), message: 'must be a non-empty string' });
      } else if (rule.layer === 'application' && rule.application !== rule.subject) {
        problems.push({
          path: at('application'),
          message: 'an application-layer rule can only name its own application',
        });
      }
    }
  });
  let i = 0;
  for (const capability of knownCapabilities) {
    if (typeof capability !== 'string' || !isCapability(capability)) {
      problems.push({ path: `knownCapabilities.${i}`, message: 'must look like <integration>:<operation>' });
    }
    i++;
  }
  if (problems.length > 0) throw new AppError('validation_failed', 'Invalid policy rules', problems);
}

function targetProblems(rule: PolicyRule, at: (field: string) => string): FieldProblem[] {
  const target = rule.target as Partial<{ integration: unknown; capability: unknown }> | undefined;
  if (!target || typeof target !== 'object') return [{ path: at('target'), message: 'is required' }];
  const hasIntegration = 'integration' in target;
  const hasCapability = 'capability' in target;
  if (hasIntegration === hasCapability) {
    return [{ path: at('target'), message: 'must name exactly one of integration or capability' }];
  }
  if (hasIntegration && !(typeof target.integration === 'string' && isIntegration(target.integration))) {
    return [{ path: at('target.integration'), message: 'must be a non-empty integration name without ":"' }];
  }
  if (hasCapability && !(typeof target.capability === 'string' && isCapability(target.capability))) {
    return [{ path: at('target.capability'), message: 'must look like <integration>:<operation>' }];
  }
  return [];
}
