import { timestampDate } from '@bufbuild/protobuf/wkt';
import { RpcClient } from '@context-gateway/messaging';
import { type OrganizationSso, rpc } from '@context-gateway/proto';
import { Body, Controller, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { id } from '../http/input.js';
import { required } from '../http/required.js';
import { Route } from '../http/route.decorator.js';

const tags = ['admin'];
const orgParams = z.strictObject({ orgId: id() });
const ssoSchema = z.object({
  orgId: z.string(),
  issuer: z.string(),
  clientId: z.string(),
  hasClientSecret: z.boolean(),
  emailDomains: z.array(z.string()),
  requiredClaims: z.record(z.string(), z.string()),
  ssoRequired: z.boolean(),
  updatedAt: z.string(),
});
const ssoBody = z.strictObject({
  issuer: z
    .string()
    .max(2_000)
    .describe(
      "The IdP's issuer: https (http only for localhost with SSO_ALLOW_INSECURE_LOCALHOST). Its discovery must answer.",
    ),
  clientId: z.string().min(1).max(512).describe("The gateway's client id at the IdP."),
  clientSecret: z
    .string()
    .max(2_000)
    .optional()
    .describe('Required the first time; absent keeps the stored one. Sealed at rest, never returned.'),
  emailDomains: z
    .array(z.string().max(253))
    .max(50)
    .default([])
    .describe('A verified email address in one of these domains makes someone a member.'),
  requiredClaims: z
    .record(z.string().max(100), z.string().max(500))
    .default({})
    .describe('ID-token claims that must all hold (a string claim equal, or an array claim containing the value).'),
  ssoRequired: z.boolean().default(false).describe('Members may not sign in with a passkey alone.'),
});
const adminErrors = ['unauthenticated', 'admin_disabled', 'not_found'] as const;

/**
 * An organization's own OpenID Connect identity provider (docs/identity.md, "Organization
 * SSO"). Register `<GATEWAY_PUBLIC_URL>/v1/auth/sso/callback` as the redirect URI at the IdP.
 */
@Controller('v1/admin/organizations/:orgId/sso')
export class SsoAdminController {
  constructor(private readonly rpcClient: RpcClient) {}

  @Route({
    method: 'PUT',
    path: '',
    summary: "Set an organization's SSO identity provider",
    description:
      "Creates or replaces it. The issuer's discovery document is fetched first: an issuer that does not answer, answers as another issuer or is not https is refused.",
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: orgParams,
    body: ssoBody,
    success: { status: 200, schema: ssoSchema, description: 'The settings (never the secret).' },
    errors: [...adminErrors, 'validation_failed', 'unknown_field', 'sso_issuer_invalid', 'conflict'],
  })
  async configure(
    @Param() p: z.infer<typeof orgParams>,
    @Body() body: z.infer<typeof ssoBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: p.orgId, resource: `organization:${p.orgId}:sso` });
    const reply = await this.rpcClient.request(rpc.identity.configureOrganizationSso, {
      ...body,
      orgId: p.orgId,
      clientSecret: body.clientSecret ?? '',
    });
    return ssoOut(required(reply.sso, 'sso'));
  }

  @Route({
    method: 'GET',
    path: '',
    summary: "An organization's SSO identity provider",
    tags,
    auth: 'operator',
    params: orgParams,
    success: { status: 200, schema: ssoSchema, description: 'The settings (never the secret).' },
    errors: [...adminErrors],
  })
  async get(@Param() p: z.infer<typeof orgParams>) {
    const reply = await this.rpcClient.request(rpc.identity.getOrganizationSso, p);
    return ssoOut(required(reply.sso, 'sso'));
  }

  @Route({
    method: 'DELETE',
    path: '',
    summary: "Remove an organization's SSO identity provider",
    description: 'Its people can no longer sign in through it; their accounts and memberships stay.',
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: orgParams,
    success: { status: 204, description: 'Removed.' },
    errors: [...adminErrors],
  })
  async delete(@Param() p: z.infer<typeof orgParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: p.orgId, resource: `organization:${p.orgId}:sso` });
    await this.rpcClient.request(rpc.identity.deleteOrganizationSso, p);
  }
}

function ssoOut(s: OrganizationSso): z.infer<typeof ssoSchema> {
  return {
    orgId: s.orgId,
    issuer: s.issuer,
    clientId: s.clientId,
    hasClientSecret: s.hasClientSecret,
    emailDomains: s.emailDomains,
    requiredClaims: s.requiredClaims,
    ssoRequired: s.ssoRequired,
    updatedAt: timestampDate(required(s.updatedAt, 'updatedAt')).toISOString(),
  };
}
