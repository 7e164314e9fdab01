import { randomUUID } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import {
  applicationDeclarationRules,
  compilePolicies,
  type Decision,
  grantRules,
  integrationOf,
  isCapability,
  type Layer,
  orgIntegrationRules,
  type PolicyRule as EngineRule,
} from '@context-gateway/policy-engine';
import { PolicyEffect, type RuleSpec } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import type { Tx } from '../database/database.module.js';
import type {
  McpServer as McpServerRow,
  McpVirtualServer as McpVirtualServerRow,
  PolicyRule as RuleRow,
} from '../generated/prisma/client.js';
import { BUILTIN_CAPABILITIES } from './capability-catalog.js';
import { ControlProgress } from './control-progress.js';
import { toolCapabilities, toolsScopeOf } from './mcp-tools.js';
import { PolicyEventsRelay } from './policy-events.relay.js';
import { rowToEngine, specToEngine } from './rule-mapping.js';
import { RulesRepository } from './rules.repository.js';

/** What a cache needs to decide for one org: every rule in force, explicit and derived. */
export interface OrgSnapshot {
  orgId: string;
  revision: bigint;
  controlSeq: bigint;
  rules: EngineRule[];
  descriptions: Map<string, string>;
  knownCapabilities: string[];
  applicationIds: string[];
  /** (application, user) of every grant, revoked ones included. */
  grantees: { applicationId: string; userId: string }[];
  mcpServers: McpServerRow[];
  mcpVirtualServers: McpVirtualServerRow[];
}

export type ChangeCause =
  | 'rule_put'
  | 'rule_deleted'
  | 'integrations_set'
  | 'user_rule_put'
  | 'user_rule_deleted'
  | 'application_changed'
  | 'grant_changed'
  | 'mcp_server_put'
  | 'mcp_server_deleted'
  | 'mcp_tools_set'
  | 'mcp_virtual_server_put'
  | 'mcp_virtual_server_deleted';

/**
 * The three layers' rules: explicit ones (admins', users'), the secure defaults derived
 * from their sources (org integrations, application declarations, grants), revisions and
 * change events. Every change bumps the org's revision and writes its PolicyChanged event to
 * the outbox in one transaction, then publishes it before returning; the outbox relay
 * re-publishes it until CONTROL acknowledges (docs/policy.md).
 */
@Injectable()
export class RulesService {
  constructor(
    private readonly repo: RulesRepository,
    private readonly events: PolicyEventsRelay,
    private readonly progress: ControlProgress,
  ) {}

  async putOrgRule(orgId: string, spec: RuleSpec): Promise<{ rule: RuleRow; revision: bigint }> {
    return this.putRule(orgId, 'org', orgId, spec);
  }

  async putApplicationRule(
    orgId: string,
    applicationId: string,
    spec: RuleSpec,
  ): Promise<{ rule: RuleRow; revision: bigint }> {
    // An app policy knows to be another org's is not this org's to govern (and its existence does not leak).
    const app = await this.repo.findApplication(applicationId);
    if (app && app.orgId !== orgId) throw new AppError('not_found', 'No such application in this organization');
    return this.putRule(orgId, 'application', applicationId, spec);
  }

  async deleteRule(orgId: string, ruleId: string): Promise<bigint> {
    const revision = await this.repo.transaction(async (tx) => {
      const rule = await this.repo.findRule(tx, ruleId);
      if (!rule || rule.orgId !== orgId) throw new AppError('not_found', 'No such rule in this organization');
      await this.repo.deleteRule(tx, ruleId);
      return this.bump(tx, orgId, 'rule_deleted');
    });
    await this.announce([revision.eventId]);
    return revision.revision;
  }

  listOrgRules(orgId: string, filter: { layer?: Layer; applicationId?: string }): Promise<RuleRow[]> {
    return this.repo.listOrgRules(orgId, filter);
  }

  revision(orgId: string): Promise<bigint> {
    return this.repo.revision(orgId);
  }

  async setOrgIntegrations(
    orgId: string,
    integrations: readonly string[],
  ): Promise<{ integrations: string[]; revision: bigint }> {
    const wanted = [...new Set(integrations)].sort();
    const bad = wanted.flatMap((name, i) =>
      /^[a-z0-9][a-z0-9_-]*$/.test(name)
        ? []
        : [{ path: `integrations.${i}`, message: 'must be an integration name (lower-case letters, digits, _ and -)' }],
    );
    if (bad.length > 0) throw new AppError('validation_failed', 'Invalid integration names', bad);
    const bumped = await this.repo.transaction(async (tx) => {
      await this.repo.replaceIntegrations(tx, orgId, wanted);
      return this.bump(tx, orgId, 'integrations_set');
    });
    await this.announce([bumped.eventId]);
    return { integrations: wanted, revision: bumped.revision };
  }

  async orgIntegrations(orgId: string): Promise<{ integrations: string[]; revision: bigint }> {
    const revision = await this.repo.revision(orgId);
    return { integrations: await this.repo.integrations(orgId), revision };
  }

  /** A user's own rule applies in every org whose apps act for them: each such org gets a new revision. */
  async putUserRule(userId: string, spec: RuleSpec): Promise<{ rule: RuleRow; revisions: Map<string, bigint> }> {
    const id = randomUUID();
    validateRule(specToEngine(id, 'user', userId, spec));
    const result = await this.repo.transaction(async (tx) => {
      const rule = await this.repo.insertRule(tx, rowFromSpec(id, null, 'user', userId, spec));
      return { rule, ...(await this.bumpUserOrgs(tx, userId, 'user_rule_put')) };
    });
    await this.announce(result.eventIds);
    return { rule: result.rule, revisions: result.revisions };
  }

  async deleteUserRule(userId: string, ruleId: string): Promise<{ rule: RuleRow; revisions: Map<string, bigint> }> {
    const result = await this.repo.transaction(async (tx) => {
      const rule = await this.repo.findRule(tx, ruleId);
      // Another user's rule, or an org's, is not this user's to see.
      if (!rule || rule.orgId !== null || rule.layer !== 'user' || rule.subject !== userId)
        throw new AppError('not_found', 'No such rule');
      await this.repo.deleteRule(tx, ruleId);
      return { rule, ...(await this.bumpUserOrgs(tx, userId, 'user_rule_deleted')) };
    });
    await this.announce(result.eventIds);
    return { rule: result.rule, revisions: result.revisions };
  }

  listUserRules(userId: string): Promise<RuleRow[]> {
    return this.repo.listUserRules(userId);
  }

  /**
   * Every rule in force for an org. The cursor and revision are read before the rules, so the
   * rules are at least as new as both numbers claim (a reader may only be pessimistic).
   */
  async snapshot(orgId: string): Promise<OrgSnapshot> {
    const inMemory = BigInt(this.progress.appliedThrough);
    const stored = await this.repo.controlSeq();
    const controlSeq = stored > inMemory ? stored : inMemory;
    const revision = await this.repo.revision(orgId);
    const sources = await this.repo.orgSources(orgId);
    const rules: EngineRule[] = [];
    const descriptions = new Map<string, string>();
    rules.push(...orgIntegrationRules(orgId, sources.integrations));
    for (const app of sources.applications) {
      // A disabled application has no declarations: nothing it asks is allowed.
      if (app.active)
        rules.push(
          ...applicationDeclarationRules({
            applicationId: app.id,
            integrations: app.integrations,
            capabilities: app.scopes.filter(isCapability),
          }),
        );
    }
    // `<integration>:tools` in a grant stands for every tool the integration's MCP server lists.
    const toolsByScope = new Map(sources.mcpServers.map((s) => [toolsScopeOf(s.integration), toolCapabilities(s)]));
    for (const grant of sources.grants) {
      if (grant.active)
        rules.push(
          ...grantRules({
            grantId: grant.id,
            userId: grant.userId,
            applicationId: grant.applicationId,
            scopes: grant.scopes.filter(isCapability).flatMap((s) => [s, ...(toolsByScope.get(s) ?? [])]),
          }),
        );
    }
    for (const row of sources.explicit) {
      rules.push(rowToEngine(row));
      if (row.description) descriptions.set(row.id, row.description);
    }
    const known = new Set(BUILTIN_CAPABILITIES);
    for (const tools of toolsByScope.values()) for (const capability of tools) known.add(capability);
    for (const rule of rules)
      if ('capability' in rule.target && isCapability(rule.target.capability)) known.add(rule.target.capability);
    return {
      orgId,
      revision,
      controlSeq,
      rules,
      descriptions,
      knownCapabilities: [...known].sort(),
      applicationIds: sources.applications.map((a) => a.id),
      // One pair per (application, user), however many grant rows (connections, re-consents) they have.
      grantees: [
        ...new Map(
          sources.grants.map((g) => [
            `${g.applicationId}\u0000${g.userId}`,
            { applicationId: g.applicationId, userId: g.userId },
          ]),
        ).values(),
      ],
      mcpServers: sources.mcpServers,
      mcpVirtualServers: sources.mcpVirtualServers,
    };
  }

  /**
   * Would `applicationId` acting for `userId` be allowed `capability`? Evaluated on a fresh
   * snapshot (read after every committed change), with the same engine the gateway runs.
   * An application outside `orgId` (when given) or unknown is not_found.
   */
  async explain(request: {
    orgId?: string;
    applicationId: string;
    userId: string;
    capability: string;
    resource?: string;
  }): Promise<{ decision: Decision; orgId: string; revision: bigint }> {
    const app = await this.repo.findApplication(request.applicationId);
    if (!app || (request.orgId && app.orgId !== request.orgId)) throw new AppError('not_found', 'No such application');
    const snapshot = await this.snapshot(app.orgId);
    const policies = compilePolicies(snapshot.rules, { knownCapabilities: snapshot.knownCapabilities });
    const decision = policies.decide({
      orgId: app.orgId,
      applicationId: app.id,
      userId: request.userId,
      capability: request.capability,
      ...(request.resource ? { resource: request.resource } : {}),
    });
    return { decision, orgId: app.orgId, revision: snapshot.revision };
  }

  /**
   * In the caller's transaction: the org's revision bumped and its policy_changed event written
   * to the outbox, so the change and its announcement commit together or not at all.
   */
  async bump(tx: Tx, orgId: string, cause: ChangeCause): Promise<{ revision: bigint; eventId: string }> {
    const revision = await this.repo.bumpRevision(tx, orgId);
    return { revision, eventId: await this.events.record(tx, orgId, revision, cause) };
  }

  /**
   * After the commit: the events published; a change call returns only once they are on
   * CONTROL (gateways rely on it: docs/policy.md). When JetStream did not acknowledge, the
   * caller gets service_unavailable (the change did not "return"), but the change and its
   * event are committed: the outbox sweep publishes the event as soon as it can.
   */
  async announce(eventIds: string[]): Promise<void> {
    if (!(await this.events.flush(eventIds)))
      throw new AppError(
        'service_unavailable',
        'The change is saved but not yet announced to the gateways; it will be shortly',
      );
  }

  private async putRule(
    orgId: string,
    layer: Layer,
    subject: string,
    spec: RuleSpec,
  ): Promise<{ rule: RuleRow; revision: bigint }> {
    const id = randomUUID();
    validateRule(specToEngine(id, layer, subject, spec));
    const result = await this.repo.transaction(async (tx) => {
      const rule = await this.repo.insertRule(tx, rowFromSpec(id, orgId, layer, subject, spec));
      return { rule, ...(await this.bump(tx, orgId, 'rule_put')) };
    });
    await this.announce([result.eventId]);
    return { rule: result.rule, revision: result.revision };
  }

  private async bumpUserOrgs(
    tx: Tx,
    userId: string,
    cause: ChangeCause,
  ): Promise<{ revisions: Map<string, bigint>; eventIds: string[] }> {
    await this.repo.lockUser(tx, userId);
    const revisions = new Map<string, bigint>();
    const eventIds: string[] = [];
    for (const orgId of await this.repo.orgsOfUser(tx, userId)) {
      const bumped = await this.bump(tx, orgId, cause);
      revisions.set(orgId, bumped.revision);
      eventIds.push(bumped.eventId);
    }
    return { revisions, eventIds };
  }
}

/** The engine's own validation (targets, resource patterns, app scoping), with the engine's problems. */
function validateRule(rule: EngineRule): void {
  try {
    compilePolicies([rule], { knownCapabilities: [] });
  } catch (error) {
    if (error instanceof AppError) {
      throw new AppError(
        'validation_failed',
        'Invalid rule',
        error.problems.map((p) => ({ path: p.path.replace(/^rules\.0\./, 'rule.'), message: p.message })),
      );
    }
    throw error;
  }
  if ('capability' in rule.target && !isCapability(rule.target.capability)) return;
  if ('integration' in rule.target && integrationOf(`${rule.target.integration}:x`) !== rule.target.integration) {
    throw new AppError('validation_failed', 'Invalid rule', [
      { path: 'rule.integration', message: 'must be an integration name' },
    ]);
  }
}

function rowFromSpec(id: string, orgId: string | null, layer: Layer, subject: string, spec: RuleSpec) {
  return {
    id,
    orgId,
    layer,
    subject,
    effect: spec.effect === PolicyEffect.DENY ? 'deny' : 'allow',
    integration: spec.integration !== '' ? spec.integration : null,
    capability: spec.integration !== '' ? null : spec.capability,
    resources: [...spec.resources],
    applicationId: spec.applicationId !== '' ? spec.applicationId : null,
    description: spec.description,
    approvalRequired: spec.approvalRequired,
  };
}
