import { timestampDate } from '@bufbuild/protobuf/wkt';
import { RpcClient } from '@context-gateway/messaging';
import { type OAuthGrant, rpc } from '@context-gateway/proto';
import { Controller, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { CurrentUser } from '../auth/auth.decorators.js';
import type { SessionUser } from '../auth/auth.types.js';
import { id } from '../http/input.js';
import { required } from '../http/required.js';
import { Route } from '../http/route.decorator.js';

const grantSchema = z.object({
  id: z.string(),
  orgId: z.string(),
  applicationId: z.string(),
  applicationName: z.string(),
  scopes: z.array(z.string()),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
});
const grantListSchema = z.object({ grants: z.array(grantSchema) });
const adminGrantListSchema = z.object({ grants: z.array(grantSchema.extend({ userId: z.string() })) });
const appParams = z.strictObject({ orgId: id(), applicationId: id() });
const adminErrors = ['unauthenticated', 'admin_disabled', 'not_found'] as const;
/** oidc-provider's grant ids: url-safe random strings. */
const grantParams = z.strictObject({ grantId: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'must be a grant id') });

/**
 * A person's own OAuth grants: which applications hold tokens acting for them, and
 * revoking one (its refresh tokens deleted, its access tokens refused by every gateway
 * from the next request).
 */
@Controller('v1')
export class OAuthGrantsController {
  constructor(private readonly rpcClient: RpcClient) {}

  @Route({
    method: 'GET',
    path: 'me/oauth-grants',
    summary: 'Applications holding OAuth tokens for you',
    tags: ['oauth'],
    auth: 'user_session',
    success: { status: 200, schema: grantListSchema, description: 'Your unexpired grants, newest first.' },
    errors: ['unauthenticated'],
  })
  async list(@CurrentUser() user: SessionUser) {
    const reply = await this.rpcClient.request(rpc.identity.listOAuthGrants, { userId: user.userId });
    return { grants: reply.grants.map(grantOut) };
  }

  @Route({
    method: 'DELETE',
    path: 'me/oauth-grants/:grantId',
    summary: "Revoke an application's tokens for you",
    description:
      'Ends the grant: its refresh tokens stop working and its access tokens are refused from the next request on.',
    tags: ['oauth'],
    audit: { action: 'revocation' },
    auth: 'user_session',
    params: grantParams,
    success: { status: 200, schema: z.object({ grant: grantSchema }), description: 'Revoked.' },
    errors: ['unauthenticated', 'not_found'],
  })
  async revoke(
    @CurrentUser() user: SessionUser,
    @Param() p: z.infer<typeof grantParams>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { userId: user.userId, resource: `oauth_grant:${p.grantId}` });
    const reply = await this.rpcClient.request(rpc.identity.revokeOAuthGrant, {
      userId: user.userId,
      grantId: p.grantId,
    });
    const grant = required(reply.grant, 'grant');
    setAuditSubject(request, { orgId: grant.orgId, applicationId: grant.applicationId });
    return { grant: grantOut(grant) };
  }
}

function grantOut(g: OAuthGrant) {
  return {
    id: g.grantId,
    orgId: g.orgId,
    applicationId: g.applicationId,
    applicationName: g.applicationName,
    scopes: g.scopes,
    createdAt: timestampDate(required(g.createdAt, 'createdAt')).toISOString(),
    expiresAt: g.expiresAt ? timestampDate(g.expiresAt).toISOString() : null,
  };
}

/** An operator's view: the OAuth grants an application holds, and revoking all its tokens. */
@Controller('v1/admin')
export class AdminOAuthGrantsController {
  constructor(private readonly rpcClient: RpcClient) {}

  @Route({
    method: 'GET',
    path: 'organizations/:orgId/applications/:applicationId/oauth-grants',
    summary: "An application's OAuth grants",
    description: 'Every person the application holds tokens for (unexpired grants, newest first).',
    tags: ['admin'],
    auth: 'operator',
    params: appParams,
    success: { status: 200, schema: adminGrantListSchema, description: 'The grants.' },
    errors: [...adminErrors],
  })
  async list(@Param() p: z.infer<typeof appParams>) {
    const reply = await this.rpcClient.request(rpc.identity.listApplicationOAuthGrants, p);
    return { grants: reply.grants.map((g) => ({ ...grantOut(g), userId: g.userId })) };
  }

  @Route({
    method: 'DELETE',
    path: 'organizations/:orgId/applications/:applicationId/oauth-grants',
    summary: "Revoke all of an application's OAuth tokens",
    description:
      'Every grant ends (refresh tokens stop working) and every access token issued until now, client credentials ones too, is refused from the next request.',
    tags: ['admin'],
    auth: 'operator',
    audit: { action: 'revocation' },
    params: appParams,
    success: { status: 200, schema: z.object({ revokedGrants: z.number() }), description: 'Revoked.' },
    errors: [...adminErrors],
  })
  async revokeAll(@Param() p: z.infer<typeof appParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, {
      orgId: p.orgId,
      applicationId: p.applicationId,
      resource: `application:${p.applicationId}:oauth_tokens`,
    });
    const reply = await this.rpcClient.request(rpc.identity.revokeApplicationOAuthTokens, p);
    return { revokedGrants: reply.revokedGrants };
  }
}
