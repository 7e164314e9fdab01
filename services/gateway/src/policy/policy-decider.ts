import { AppError, type FieldProblem } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import {
  type CompiledPolicySet,
  compilePolicies,
  type Decision,
  type PolicyRule,
} from '@context-gateway/policy-engine';
import { type GetCompiledRulesResponse, PolicyEffect, rpc } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION, SERVICE_ENV } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { type McpServerView, mcpServerView } from '../mcp/mcp-server-view.js';
import { type VirtualServerView, virtualServerView } from '../mcp/mcp-virtual-server.js';
import { ControlHead } from './control-head.js';
import { ControlWatermark, type Requirement } from './control-watermark.js';
import { layerName } from './policy-layers.js';

export interface DecisionRequest {
  orgId: string;
  applicationId: string;
  userId: string;
  capability: string;
  resource?: string;
}

/** One org's compiled rules and how new they are. */
interface OrgEntry {
  policies: CompiledPolicySet;
  revision: bigint;
  controlSeq: number;
  applications: Set<string>;
  /** `applicationId` NUL `userId` of every grant in the org, active or revoked. */
  grantees: Set<string>;
  /** The org's remote MCP servers and their tools, as of this revision. */
  mcpServers: readonly McpServerView[];
  /** The org's named virtual servers by name, as of this revision. */
  mcpVirtualServers: ReadonlyMap<string, VirtualServerView>;
}

/** Gateway mode's view of an org: its MCP servers and decisions, both from one fresh rule set. */
export interface McpPolicyView {
  /** The org's policy revision the view is at: anything derived from it is valid while it holds. */
  revision: bigint;
  servers: readonly McpServerView[];
  /** The org's named virtual servers (selections of `servers`), by name. */
  virtualServers: ReadonlyMap<string, VirtualServerView>;
  decide(request: DecisionRequest): Decision;
}

/** What the next decision for an org needs its cached rules to have seen. */
interface OrgNeed {
  revision: bigint;
  controlSeq: number;
}

/**
 * The gateway's three-layer check, decided in-process from a per-org cache of compiled
 * rules. Before each decision it makes sure the cache reflects every policy change and
 * revocation that had returned to its caller before the decision started (docs/policy.md):
 *
 *   1. learn a CONTROL sequence L covering every change stored before the decision began
 *      (ControlHead: pushed, or asked; one round trip shared by concurrent decisions);
 *   2. wait until this process has read CONTROL up to L (usually already true);
 *   3. if an event up to L concerns the org (PolicyChanged revision R, or a grant or
 *      application event at sequence S), refill that org's rules from policy until they are
 *      at revision >= R and policy's cursor >= S;
 *   4. decide with the engine.
 *
 * Anything that cannot be made current within POLICY_FRESHNESS_TIMEOUT_MS fails closed
 * with `policy_unavailable`; a denial throws `policy_denied` naming the layer and rules.
 */
@Injectable()
export class PolicyDecider implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly entries = new Map<string, OrgEntry>();
  private readonly needs = new Map<string, OrgNeed>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly watermark: ControlWatermark;
  private readonly changeListeners = new Set<(orgId: string) => void>();

  constructor(
    private readonly rpcClient: RpcClient,
    @Inject(NATS_CONNECTION) nc: NatsConnection,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
    head: ControlHead,
  ) {
    this.watermark = new ControlWatermark(nc, head, (r) => this.require(r), this.logger);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.watermark.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.watermark.stop();
  }

  /** The decision (records checks it per scope; denials are the caller's to raise). Unknown applications of the org are not_found. */
  async evaluate(request: DecisionRequest): Promise<Decision> {
    return (await this.applicationEntry(request)).policies.decide(request);
  }

  /** One decision per capability, against one freshness check (a records query asks for every scope of an integration). */
  evaluateEach(request: Omit<DecisionRequest, 'capability'>, capabilities: readonly string[]): Promise<Decision[]> {
    // A then() rather than async layers: once per records query, every promise (and each
    // await's hidden one) runs AsyncLocalStorage's promise hook. A throw is still a rejection.
    try {
      return this.current(request.orgId).then((entry) => {
        ofApplication(entry, request.applicationId);
        return capabilities.map((capability) => entry.policies.decide({ ...request, capability }));
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The org's MCP servers and a decide() on the same fresh rules (one freshness check for a tools/list). */
  async mcpView(request: Pick<DecisionRequest, 'orgId' | 'applicationId'>): Promise<McpPolicyView> {
    const entry = await this.applicationEntry(request);
    return {
      revision: entry.revision,
      servers: entry.mcpServers,
      virtualServers: entry.mcpVirtualServers,
      decide: (r) => entry.policies.decide(r),
    };
  }

  /**
   * evaluate() for an application asking about itself: only about users who granted it
   * access (now or before). Anyone else is not_found, exactly like an unknown user: an app
   * must not learn how the org's policy treats people who never dealt with it.
   */
  async evaluateForGrantee(request: DecisionRequest): Promise<Decision> {
    const entry = await this.applicationEntry(request);
    if (!entry.grantees.has(`${request.applicationId}\u0000${request.userId}`))
      throw new AppError('not_found', 'No such user among those who granted this application access');
    return entry.policies.decide(request);
  }

  /** The org's fresh rules, for an application of that org (else not_found). */
  private async applicationEntry(request: Pick<DecisionRequest, 'orgId' | 'applicationId'>): Promise<OrgEntry> {
    return ofApplication(await this.current(request.orgId), request.applicationId);
  }

  private current(orgId: string): Promise<OrgEntry> {
    // A time budget measured against real waits (timers, RPC timeouts), not a point on the
    // wall clock: monotonic time, which neither NTP steps nor an injected test clock move.
    // Not async (a promise fewer per decision), but a throw is still a rejection, as it was.
    try {
      const deadline = performance.now() + this.env.POLICY_FRESHNESS_TIMEOUT_MS;
      return this.watermark.latestSeq().then((latest) => {
        // The usual case, answered without waiting: CONTROL read up to `latest` already and
        // the org's rules current for it (what the slow path below checks first, too).
        if (this.watermark.consumedSeq >= latest) {
          const entry = this.entries.get(orgId);
          if (entry && this.satisfies(orgId, entry)) return entry;
        }
        return this.brought(orgId, latest, deadline);
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The org's rules once CONTROL is read up to `latest` and they reflect it (refilled if not), by the deadline. */
  private async brought(orgId: string, latest: number, deadline: number): Promise<OrgEntry> {
    await this.watermark.waitConsumed(latest, Math.max(1, deadline - performance.now()));
    let lastError: unknown;
    for (;;) {
      const entry = this.entries.get(orgId);
      if (entry && this.satisfies(orgId, entry)) return entry;
      if (performance.now() >= deadline)
        throw new AppError(
          'policy_unavailable',
          'The policy rules for this organization could not be brought up to date in time',
          [],
          { cause: lastError },
        );
      try {
        await this.load(orgId, deadline);
      } catch (error) {
        // policy slow or restarting: try again until the deadline, then fail closed.
        lastError = error;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  private satisfies(orgId: string, entry: OrgEntry): boolean {
    const need = this.needs.get(orgId);
    // Events before this process started reading are not known one by one: require policy to have applied them all.
    const seq = Math.max(this.watermark.startSeq, need?.controlSeq ?? 0);
    return entry.controlSeq >= seq && entry.revision >= (need?.revision ?? 0n);
  }

  /**
   * Calls `listener` with the org of each CONTROL event as it is read (rules, grants,
   * applications, the MCP tool catalog): what was decided for that org may now differ.
   * Decisions made after the call already see the change. Returns the unsubscribe.
   */
  onOrgChange(listener: (orgId: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Called synchronously for each CONTROL event as it is read: the org's cache is stale until refilled past it. */
  private require(r: Requirement): void {
    const need = this.needs.get(r.orgId) ?? { revision: 0n, controlSeq: 0 };
    if (r.revision !== undefined && r.revision > need.revision) need.revision = r.revision;
    if (r.controlSeq !== undefined && r.controlSeq > need.controlSeq) need.controlSeq = r.controlSeq;
    this.needs.set(r.orgId, need);
    // A listener's failure must not stop the others nor the CONTROL reader.
    for (const listener of this.changeListeners)
      try {
        listener(r.orgId);
      } catch (error) {
        this.logger.error({ err: (error as Error).message }, 'org change listener failed');
      }
  }

  /** One fill per org at a time; a caller whose need is still unmet after it simply asks again. */
  private load(orgId: string, deadline: number): Promise<void> {
    let pending = this.loading.get(orgId);
    if (!pending) {
      pending = this.fetch(orgId, deadline).finally(() => this.loading.delete(orgId));
      this.loading.set(orgId, pending);
    }
    return pending;
  }

  private async fetch(orgId: string, deadline: number): Promise<void> {
    const reply = await this.rpcClient.request(
      rpc.policy.getCompiledRules,
      { orgId },
      { timeoutMs: Math.max(1, Math.min(deadline - performance.now(), rpc.policy.getCompiledRules.timeoutMs)) },
    );
    const fetched = compileReply(reply);
    const current = this.entries.get(orgId);
    // Never replace newer rules with older ones (two fills racing).
    const kept =
      !current || (fetched.revision >= current.revision && fetched.controlSeq >= current.controlSeq)
        ? fetched
        : current;
    this.entries.set(orgId, kept);
    if (!this.satisfies(orgId, kept)) {
      // policy has not applied the event yet (its consumer is a moment behind): give it a moment.
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** The org's entry when `applicationId` is one of its applications; anything else is not_found. */
function ofApplication(entry: OrgEntry, applicationId: string): OrgEntry {
  if (!entry.applications.has(applicationId)) throw new AppError('not_found', 'No such application');
  return entry;
}

function compileReply(reply: GetCompiledRulesResponse): OrgEntry {
  const rules: PolicyRule[] = reply.rules.map((r) => ({
    id: r.id,
    layer: layerName(r.layer),
    subject: r.subject,
    effect: r.effect === PolicyEffect.DENY ? 'deny' : 'allow',
    target: r.integration !== '' ? { integration: r.integration } : { capability: r.capability },
    ...(r.resources.length > 0 ? { resources: r.resources } : {}),
    ...(r.applicationId !== '' ? { application: r.applicationId } : {}),
    ...(r.approvalRequired ? { approvalRequired: true } : {}),
  }));
  return {
    policies: compilePolicies(rules, { knownCapabilities: reply.knownCapabilities }),
    revision: reply.revision,
    controlSeq: Number(reply.controlSeq),
    applications: new Set(reply.applicationIds),
    grantees: new Set(reply.grantees.map((g) => `${g.applicationId}\u0000${g.userId}`)),
    mcpServers: reply.mcpServers.map(mcpServerView),
    mcpVirtualServers: new Map(reply.mcpVirtualServers.map((v) => [v.name, virtualServerView(v)])),
  };
}

/** `policy_denied`, never a bare 403: the detail names the layer, `errors` lists the decision. */
export function deniedError(capability: string, decision: Decision): AppError {
  const layer = decision.decidedBy;
  const why =
    decision.reason === 'unknown_capability'
      ? `'${capability}' is not a known capability`
      : decision.reason === 'deny_rule'
        ? `the ${layer} layer has a matching deny rule (${decision.matched.find((m) => m.layer === layer)?.ruleIds.join(', ')})`
        : `the ${layer} layer has no rule allowing it`;
  const problems: FieldProblem[] = [
    { path: 'decision.decidedBy', message: layer ?? 'none' },
    { path: 'decision.reason', message: decision.reason },
    ...decision.matched.map((m) => ({ path: `decision.matched.${m.layer}.${m.effect}`, message: m.ruleIds.join(',') })),
  ];
  return new AppError('policy_denied', `Denied '${capability}': ${why}`, problems);
}

/**
 * The refusal of an allowed decision that asks for the person's approval, anywhere but a held
 * MCP call: a credential, a records query or a listing cannot wait for a passkey approval of
 * one exact call, so it would otherwise use the capability unapproved.
 */
export function approvalRequiredError(capability: string, decision: Decision): AppError {
  const approval = decision.approval;
  return new AppError(
    'approval_required',
    `'${capability}' needs the person's approval of each call (${approval?.layer ?? 'a'} rule ${approval?.ruleIds.join(', ') ?? ''}): only a call through /mcp can be approved`,
    approval ? [{ path: `decision.approval.${approval.layer}`, message: approval.ruleIds.join(',') }] : [],
  );
}

/**
 * A decision as the audit trail keeps it (AuditRecord.policy): the deciding layer in the
 * audit vocabulary ('org' | 'user' | 'app', 'none' when allowed or unknown), the reason,
 * and every matched rule id in layer order — so an auditor can see why without the rules.
 */
export function auditPolicyOf(decision: Decision): { decidedBy: string; reason: string; matchedRuleIds: string[] } {
  // A loop, not flatMap: no array per layer on the way (once per records query).
  const matchedRuleIds: string[] = [];
  for (const match of decision.matched) for (const id of match.ruleIds) matchedRuleIds.push(id);
  return {
    decidedBy: decision.decidedBy === 'application' ? 'app' : (decision.decidedBy ?? 'none'),
    reason: decision.reason,
    matchedRuleIds,
  };
}
