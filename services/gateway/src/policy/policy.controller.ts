import type { MessageInitShape } from '@bufbuild/protobuf';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import type { Decision } from '@context-gateway/policy-engine';
import { PolicyEffect, PolicyLayer, type PolicyRule, rpc, type RuleSpecSchema } from '@context-gateway/proto';
import { assertRecentPasskeyUse, SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { Caller, CurrentUser } from '../auth/auth.decorators.js';
import type { ApplicationCaller, SessionUser } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { id } from '../http/input.js';
import { required } from '../http/required.js';
import { Route } from '../http/route.decorator.js';
import {
  type ExplainBody,
  explainBody,
  explanationSchema,
  integrationsBody,
  integrationsSchema,
  putRuleResponse,
  type RuleBody,
  ruleBody,
  ruleListSchema,
  userRuleResponse,
} from './policy.schemas.js';
import { PolicyDecider } from './policy-decider.js';
import { layerName, layerNameOrNull } from './policy-layers.js';

const orgParams = z.strictObject({ orgId: id() });
const appParams = z.strictObject({ orgId: id(), applicationId: id() });
const ruleParams = z.strictObject({ orgId: id(), ruleId: id() });
const myRuleParams = z.strictObject({ ruleId: id() });
const listQuery = z.strictObject({
  layer: z.enum(['org', 'application']).optional(),
  applicationId: id().optional(),
});
const adminErrors = ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field'] as const;

/**
 * The policy API: admins govern the org and application layers and the org's integrations;
 * users their own layer; explain says what would be decided and why. Writes answer only
 * once the change is in force at every gateway for any request that starts afterwards.
 */
@Controller('v1')
export class PolicyController {
  readonly #stepUpMaxAgeMs: number;

  constructor(
    private readonly rpcClient: RpcClient,
    private readonly decider: PolicyDecider,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Pick<Env, 'PERSON_STEP_UP_MAX_AGE_MS'>,
  ) {
    this.#stepUpMaxAgeMs = env.PERSON_STEP_UP_MAX_AGE_MS;
  }

  @Route({
    method: 'GET',
    path: 'admin/organizations/:orgId/policy/rules',
    summary: "List an org's explicit rules",
    tags: ['policy-admin'],
    auth: 'operator',
    params: orgParams,
    query: listQuery,
    success: { status: 200, schema: ruleListSchema, description: 'Org- and application-layer rules, oldest first.' },
    errors: [...adminErrors],
  })
  async listOrgRules(@Param() p: z.infer<typeof orgParams>, @Query() q: z.infer<typeof listQuery>) {
    const reply = await this.rpcClient.request(rpc.policy.listRules, {
      orgId: p.orgId,
      layer:
        q.layer === 'org'
          ? PolicyLayer.ORG
          : q.layer === 'application'
            ? PolicyLayer.APPLICATION
            : PolicyLayer.UNSPECIFIED,
      applicationId: q.applicationId ?? '',
    });
    return { rules: reply.rules.map(ruleOut), revision: Number(reply.revision) };
  }

  @Route({
    method: 'POST',
    path: 'admin/organizations/:orgId/policy/rules',
    summary: 'Add an org-layer rule',
    description: 'Applies to every application of the org. A deny overrides any allow of the org layer.',
    tags: ['policy-admin'],
    audit: { action: 'policy_change' },
    auth: 'operator',
    params: orgParams,
    body: ruleBody,
    success: { status: 201, schema: putRuleResponse, description: 'Stored and in force.' },
    errors: [...adminErrors],
  })
  async putOrgRule(@Param() p: z.infer<typeof orgParams>, @Body() body: RuleBody, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: p.orgId, ...auditTarget(body) });
    const reply = await this.rpcClient.request(rpc.policy.putOrgRule, { orgId: p.orgId, rule: specIn(body) });
    const rule = required(reply.rule, 'rule');
    setAuditSubject(request, { resource: `policy_rule:${rule.id}` });
    return { rule: ruleOut(rule), revision: Number(reply.revision) };
  }

  @Route({
    method: 'POST',
    path: 'admin/organizations/:orgId/applications/:applicationId/policy/rules',
    summary: 'Add an application-layer rule',
    tags: ['policy-admin'],
    audit: { action: 'policy_change' },
    auth: 'operator',
    params: appParams,
    body: ruleBody,
    success: { status: 201, schema: putRuleResponse, description: 'Stored and in force.' },
    errors: [...adminErrors, 'not_found'],
  })
  async putApplicationRule(
    @Param() p: z.infer<typeof appParams>,
    @Body() body: RuleBody,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: p.orgId, applicationId: p.applicationId, ...auditTarget(body) });
    const reply = await this.rpcClient.request(rpc.policy.putApplicationRule, {
      orgId: p.orgId,
      applicationId: p.applicationId,
      rule: specIn(body),
    });
    const rule = required(reply.rule, 'rule');
    setAuditSubject(request, { resource: `policy_rule:${rule.id}` });
    return { rule: ruleOut(rule), revision: Number(reply.revision) };
  }

  @Route({
    method: 'DELETE',
    path: 'admin/organizations/:orgId/policy/rules/:ruleId',
    summary: 'Delete an org- or application-layer rule',
    tags: ['policy-admin'],
    audit: { action: 'policy_change' },
    auth: 'operator',
    params: ruleParams,
    success: { status: 200, schema: z.object({ revision: z.number() }), description: 'Deleted.' },
    errors: [...adminErrors, 'not_found'],
  })
  async deleteRule(@Param() p: z.infer<typeof ruleParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: p.orgId, resource: `policy_rule:${p.ruleId}` });
    const reply = await this.rpcClient.request(rpc.policy.deleteRule, { orgId: p.orgId, ruleId: p.ruleId });
    return { revision: Number(reply.revision) };
  }

  @Route({
    method: 'PUT',
    path: 'admin/organizations/:orgId/policy/integrations',
    summary: "Set the org's integrations",
    description: 'The org layer allows exactly these integrations (secure default: none).',
    tags: ['policy-admin'],
    audit: { action: 'policy_change' },
    auth: 'operator',
    params: orgParams,
    body: integrationsBody,
    success: { status: 200, schema: integrationsSchema, description: 'In force.' },
    errors: [...adminErrors],
  })
  async setIntegrations(
    @Param() p: z.infer<typeof orgParams>,
    @Body() body: z.infer<typeof integrationsBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: p.orgId, resource: `org_integrations:${p.orgId}` });
    const reply = await this.rpcClient.request(rpc.policy.setOrgIntegrations, {
      orgId: p.orgId,
      integrations: body.integrations,
    });
    return { integrations: reply.integrations, revision: Number(reply.revision) };
  }

  @Route({
    method: 'GET',
    path: 'admin/organizations/:orgId/policy/integrations',
    summary: "The org's integrations",
    tags: ['policy-admin'],
    auth: 'operator',
    params: orgParams,
    success: { status: 200, schema: integrationsSchema, description: 'The enabled integrations.' },
    errors: [...adminErrors],
  })
  async getIntegrations(@Param() p: z.infer<typeof orgParams>) {
    const reply = await this.rpcClient.request(rpc.policy.getOrgIntegrations, { orgId: p.orgId });
    return { integrations: reply.integrations, revision: Number(reply.revision) };
  }

  @Route({
    method: 'POST',
    path: 'admin/policy/explain',
    summary: 'Explain a decision (operator)',
    description:
      'Would this application, acting for this user, be allowed this capability (on this resource), and why.',
    tags: ['policy-admin'],
    auth: 'operator',
    body: explainBody,
    success: { status: 200, schema: explanationSchema, description: 'The decision and the rules that made it.' },
    errors: [...adminErrors, 'not_found'],
  })
  async explainAsOperator(@Body() body: ExplainBody) {
    const reply = await this.rpcClient.request(rpc.policy.explain, {
      applicationId: body.applicationId,
      userId: body.userId,
      capability: body.capability,
      resource: body.resource ?? '',
    });
    return {
      allowed: reply.allowed,
      decidedBy: layerNameOrNull(reply.decidedBy),
      reason: reply.reason as Decision['reason'],
      matched: reply.matched.map((m) => ({
        layer: layerName(m.layer),
        effect: m.effect === PolicyEffect.DENY ? ('deny' as const) : ('allow' as const),
        ruleIds: m.ruleIds,
      })),
      ...(reply.approval
        ? { approval: { layer: layerName(reply.approval.layer), ruleIds: reply.approval.ruleIds } }
        : {}),
    };
  }

  @Route({
    method: 'POST',
    path: 'policy/explain',
    summary: 'Explain a decision (the calling application)',
    description:
      "Decided exactly as the gateway decides the app's own requests. An application may only ask about itself and about users who granted it access (now or before); anything else is 404.",
    tags: ['policy'],
    auth: 'api_key',
    body: explainBody,
    success: { status: 200, schema: explanationSchema, description: 'The decision and the rules that made it.' },
    errors: ['unauthenticated', 'validation_failed', 'unknown_field', 'not_found', 'policy_unavailable'],
  })
  async explainAsApplication(@Caller() caller: ApplicationCaller, @Body() body: ExplainBody) {
    if (body.applicationId !== caller.applicationId) throw notFound();
    const decision = await this.decider.evaluateForGrantee({
      orgId: caller.orgId,
      applicationId: body.applicationId,
      userId: body.userId,
      capability: body.capability,
      ...(body.resource ? { resource: body.resource } : {}),
    });
    return {
      allowed: decision.allowed,
      decidedBy: decision.decidedBy,
      reason: decision.reason,
      matched: decision.matched.map((m) => ({ layer: m.layer, effect: m.effect, ruleIds: [...m.ruleIds] })),
      ...(decision.approval
        ? { approval: { layer: decision.approval.layer, ruleIds: [...decision.approval.ruleIds] } }
        : {}),
    };
  }

  @Route({
    method: 'GET',
    path: 'me/policy/rules',
    summary: 'Your own rules',
    tags: ['policy-user'],
    auth: 'user_session',
    success: { status: 200, schema: ruleListSchema, description: 'Your user-layer rules.' },
    errors: ['unauthenticated'],
  })
  async listMyRules(@CurrentUser() user: SessionUser) {
    const reply = await this.rpcClient.request(rpc.policy.listUserRules, { userId: user.userId });
    return { rules: reply.rules.map(ruleOut) };
  }

  @Route({
    method: 'POST',
    path: 'me/policy/rules',
    summary: 'Add one of your own rules',
    description:
      'E.g. "my apps may create issues but not delete repositories". Applies to every app acting for you (or one, with applicationId). ' +
      'Needs a passkey use within the last few minutes (401 `reauthentication_required`).',
    tags: ['policy-user'],
    audit: { action: 'policy_change' },
    auth: 'user_session',
    body: ruleBody,
    success: { status: 201, schema: userRuleResponse, description: 'Stored and in force.' },
    errors: ['unauthenticated', 'reauthentication_required', 'validation_failed', 'unknown_field'],
  })
  async putMyRule(@CurrentUser() user: SessionUser, @Body() body: RuleBody, @Req() request: FastifyRequest) {
    setAuditSubject(request, { userId: user.userId, ...auditTarget(body) });
    assertRecentPasskeyUse(user.authenticatedAt, this.#stepUpMaxAgeMs, this.clock.now());
    const reply = await this.rpcClient.request(rpc.policy.putUserRule, { userId: user.userId, rule: specIn(body) });
    const rule = required(reply.rule, 'rule');
    setAuditSubject(request, { resource: `policy_rule:${rule.id}` });
    return {
      rule: ruleOut(rule),
      revisions: reply.revisions.map((r) => ({ orgId: r.orgId, revision: Number(r.revision) })),
    };
  }

  @Route({
    method: 'DELETE',
    path: 'me/policy/rules/:ruleId',
    summary: 'Delete one of your own rules',
    description: 'Needs a passkey use within the last few minutes (401 `reauthentication_required`).',
    tags: ['policy-user'],
    audit: { action: 'policy_change' },
    auth: 'user_session',
    params: myRuleParams,
    success: { status: 200, schema: userRuleResponse, description: 'Deleted.' },
    errors: ['unauthenticated', 'reauthentication_required', 'not_found'],
  })
  async deleteMyRule(
    @CurrentUser() user: SessionUser,
    @Param() p: z.infer<typeof myRuleParams>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { userId: user.userId, resource: `policy_rule:${p.ruleId}` });
    assertRecentPasskeyUse(user.authenticatedAt, this.#stepUpMaxAgeMs, this.clock.now());
    const reply = await this.rpcClient.request(rpc.policy.deleteUserRule, { userId: user.userId, ruleId: p.ruleId });
    return {
      rule: ruleOut(required(reply.rule, 'rule')),
      revisions: reply.revisions.map((r) => ({ orgId: r.orgId, revision: Number(r.revision) })),
    };
  }
}

/** What a rule write is about, for its audit event: the capability or the integration. */
function auditTarget(body: RuleBody): { capability?: string; integration?: string } {
  return body.capability ? { capability: body.capability } : { integration: body.integration };
}

function notFound(): AppError {
  return new AppError('not_found', 'No such application');
}

function specIn(body: RuleBody): MessageInitShape<typeof RuleSpecSchema> {
  return {
    effect: body.effect === 'deny' ? PolicyEffect.DENY : PolicyEffect.ALLOW,
    integration: body.integration ?? '',
    capability: body.capability ?? '',
    resources: body.resources ?? [],
    applicationId: body.applicationId ?? '',
    description: body.description ?? '',
    approvalRequired: body.approvalRequired ?? false,
  };
}

function ruleOut(r: PolicyRule) {
  return {
    id: r.id,
    layer: layerName(r.layer),
    subject: r.subject,
    effect: r.effect === PolicyEffect.DENY ? ('deny' as const) : ('allow' as const),
    ...(r.integration ? { integration: r.integration } : {}),
    ...(r.capability ? { capability: r.capability } : {}),
    ...(r.resources.length > 0 ? { resources: r.resources } : {}),
    ...(r.applicationId ? { applicationId: r.applicationId } : {}),
    ...(r.description ? { description: r.description } : {}),
    ...(r.approvalRequired ? { approvalRequired: true } : {}),
  };
}
