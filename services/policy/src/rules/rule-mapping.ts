import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Layer, PolicyRule as EngineRule } from '@context-gateway/policy-engine';
import { PolicyEffect, PolicyLayer, type PolicyRuleSchema, type RuleSpec } from '@context-gateway/proto';

import type { PolicyRule as RuleRow } from '../generated/prisma/client.js';

/** Wire enum ⇄ engine layer names. */
export const LAYER_TO_WIRE: Record<Layer, PolicyLayer> = {
  org: PolicyLayer.ORG,
  user: PolicyLayer.USER,
  application: PolicyLayer.APPLICATION,
};
export const WIRE_TO_LAYER: Partial<Record<PolicyLayer, Layer>> = {
  [PolicyLayer.ORG]: 'org',
  [PolicyLayer.USER]: 'user',
  [PolicyLayer.APPLICATION]: 'application',
};

export function rowToEngine(row: RuleRow): EngineRule {
  return {
    id: row.id,
    layer: row.layer as Layer,
    subject: row.subject,
    effect: row.effect as 'allow' | 'deny',
    target: row.integration !== null ? { integration: row.integration } : { capability: row.capability ?? '' },
    ...(row.resources.length > 0 ? { resources: row.resources } : {}),
    ...(row.applicationId ? { application: row.applicationId } : {}),
    ...(row.approvalRequired ? { approvalRequired: true } : {}),
  };
}

export function engineToWire(rule: EngineRule, description = ''): MessageInitShape<typeof PolicyRuleSchema> {
  return {
    id: rule.id,
    layer: LAYER_TO_WIRE[rule.layer],
    subject: rule.subject,
    effect: rule.effect === 'allow' ? PolicyEffect.ALLOW : PolicyEffect.DENY,
    integration: 'integration' in rule.target ? rule.target.integration : '',
    capability: 'capability' in rule.target ? rule.target.capability : '',
    resources: [...(rule.resources ?? [])],
    applicationId: rule.application ?? '',
    description,
    approvalRequired: rule.approvalRequired === true,
  };
}

export function rowToWire(row: RuleRow): MessageInitShape<typeof PolicyRuleSchema> {
  return engineToWire(rowToEngine(row), row.description);
}

/** A write request's spec as the engine rule it becomes, for the engine's own validation. */
export function specToEngine(id: string, layer: Layer, subject: string, spec: RuleSpec): EngineRule {
  return {
    id,
    layer,
    subject,
    effect: spec.effect === PolicyEffect.DENY ? 'deny' : 'allow',
    target: spec.integration !== '' ? { integration: spec.integration } : { capability: spec.capability },
    ...(spec.resources.length > 0 ? { resources: spec.resources } : {}),
    ...(spec.applicationId !== '' ? { application: spec.applicationId } : {}),
    ...(spec.approvalRequired ? { approvalRequired: true } : {}),
  };
}
