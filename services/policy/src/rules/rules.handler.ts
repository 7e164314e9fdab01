import { RpcHandler } from '@context-gateway/messaging';
import type { Layer } from '@context-gateway/policy-engine';
import {
  type DeleteRuleRequest,
  type DeleteUserRuleRequest,
  type ExplainRequest,
  type GetCompiledRulesRequest,
  type GetOrgIntegrationsRequest,
  type ListRulesRequest,
  type ListUserRulesRequest,
  PolicyEffect,
  PolicyLayer,
  type PutApplicationRuleRequest,
  type PutOrgRuleRequest,
  type PutUserRuleRequest,
  rpc,
  type RuleSpec,
  type SetOrgIntegrationsRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { mcpServerToWire } from './mcp-servers.handler.js';
import { mcpVirtualServerToWire } from './mcp-virtual-servers.handler.js';
import { engineToWire, LAYER_TO_WIRE, rowToWire, WIRE_TO_LAYER } from './rule-mapping.js';
import { RulesService } from './rules.service.js';

/** policy's NATS verbs. Admin (org/app layers) and user (own layer) writes are separate subjects. */
@Controller()
export class RulesHandler {
  constructor(private readonly rules: RulesService) {}

  @RpcHandler(rpc.policy.putOrgRule)
  async putOrgRule(@Payload() req: PutOrgRuleRequest) {
    const { rule, revision } = await this.rules.putOrgRule(req.orgId, req.rule as RuleSpec);
    return { rule: rowToWire(rule), revision };
  }

  @RpcHandler(rpc.policy.putApplicationRule)
  async putApplicationRule(@Payload() req: PutApplicationRuleRequest) {
    const { rule, revision } = await this.rules.putApplicationRule(req.orgId, req.applicationId, req.rule as RuleSpec);
    return { rule: rowToWire(rule), revision };
  }

  @RpcHandler(rpc.policy.deleteRule)
  async deleteRule(@Payload() req: DeleteRuleRequest) {
    return { revision: await this.rules.deleteRule(req.orgId, req.ruleId) };
  }

  @RpcHandler(rpc.policy.listRules)
  async listRules(@Payload() req: ListRulesRequest) {
    const layer: Layer | undefined = WIRE_TO_LAYER[req.layer];
    const [rules, revision] = await Promise.all([
      this.rules.listOrgRules(req.orgId, {
        ...(layer ? { layer } : {}),
        ...(req.applicationId ? { applicationId: req.applicationId } : {}),
      }),
      this.rules.revision(req.orgId),
    ]);
    return { rules: rules.map(rowToWire), revision };
  }

  @RpcHandler(rpc.policy.setOrgIntegrations)
  async setOrgIntegrations(@Payload() req: SetOrgIntegrationsRequest) {
    return this.rules.setOrgIntegrations(req.orgId, req.integrations);
  }

  @RpcHandler(rpc.policy.getOrgIntegrations)
  async getOrgIntegrations(@Payload() req: GetOrgIntegrationsRequest) {
    return this.rules.orgIntegrations(req.orgId);
  }

  @RpcHandler(rpc.policy.putUserRule)
  async putUserRule(@Payload() req: PutUserRuleRequest) {
    const { rule, revisions } = await this.rules.putUserRule(req.userId, req.rule as RuleSpec);
    return { rule: rowToWire(rule), revisions: [...revisions].map(([orgId, revision]) => ({ orgId, revision })) };
  }

  @RpcHandler(rpc.policy.deleteUserRule)
  async deleteUserRule(@Payload() req: DeleteUserRuleRequest) {
    const { rule, revisions } = await this.rules.deleteUserRule(req.userId, req.ruleId);
    return { rule: rowToWire(rule), revisions: [...revisions].map(([orgId, revision]) => ({ orgId, revision })) };
  }

  @RpcHandler(rpc.policy.listUserRules)
  async listUserRules(@Payload() req: ListUserRulesRequest) {
    return { rules: (await this.rules.listUserRules(req.userId)).map(rowToWire), revision: 0n };
  }

  @RpcHandler(rpc.policy.explain)
  async explain(@Payload() req: ExplainRequest) {
    const { decision, orgId, revision } = await this.rules.explain({
      ...(req.orgId ? { orgId: req.orgId } : {}),
      applicationId: req.applicationId,
      userId: req.userId,
      capability: req.capability,
      ...(req.resource ? { resource: req.resource } : {}),
    });
    return {
      allowed: decision.allowed,
      decidedBy: decision.decidedBy ? LAYER_TO_WIRE[decision.decidedBy] : PolicyLayer.UNSPECIFIED,
      reason: decision.reason,
      matched: decision.matched.map((m) => ({
        layer: LAYER_TO_WIRE[m.layer],
        ruleIds: [...m.ruleIds],
        effect: m.effect === 'allow' ? PolicyEffect.ALLOW : PolicyEffect.DENY,
      })),
      ...(decision.approval
        ? { approval: { layer: LAYER_TO_WIRE[decision.approval.layer], ruleIds: [...decision.approval.ruleIds] } }
        : {}),
      orgId,
      revision,
    };
  }

  @RpcHandler(rpc.policy.getCompiledRules)
  async getCompiledRules(@Payload() req: GetCompiledRulesRequest) {
    const s = await this.rules.snapshot(req.orgId);
    return {
      orgId: s.orgId,
      revision: s.revision,
      controlSeq: s.controlSeq,
      rules: s.rules.map((r) => engineToWire(r, s.descriptions.get(r.id) ?? '')),
      knownCapabilities: s.knownCapabilities,
      applicationIds: s.applicationIds,
      grantees: s.grantees,
      mcpServers: s.mcpServers.map(mcpServerToWire),
      mcpVirtualServers: s.mcpVirtualServers.map(mcpVirtualServerToWire),
    };
  }
}
