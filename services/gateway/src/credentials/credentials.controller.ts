import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { Route } from '../http/route.decorator.js';
import { insufficientScope } from '../oauth/access-tokens.js';
import { auditPolicyOf } from '../policy/policy-decider.js';
import { credentialSchema, issueCredentialBody } from './credentials.schemas.js';
import { CredentialsService, personOf } from './credentials.service.js';

/**
 * Credential-only mode: an application (or an agent acting for a person) that calls the
 * source's API itself gets the person's short-lived source token, after the same checks a
 * records query or a tool call passes. Intent and outcome are in the audit trail; the token
 * never is.
 */
@Controller('v1')
export class CredentialsController {
  constructor(
    private readonly credentials: CredentialsService,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  @Route({
    method: 'POST',
    path: 'credentials',
    summary: "A person's short-lived source token",
    description:
      "Returns the source's access token for the person's connection to `integration` (never the refresh token), " +
      'refreshed first when it is close to expiry. Your application needs an active grant on the connection and ' +
      'every capability the grant covers must be allowed by the org, user and application policies (403 `policy_denied` ' +
      'names the deciding layer; 403 `approval_required` when a rule asks for the person’s approval of each call of one of them, ' +
      'which only a call through /mcp can wait for). A person without a usable connection is 409 `connection_required`, with `connectUrl` ' +
      'to start the connect flow when your application has a callback URL and scopes for the integration.',
    tags: ['credentials'],
    auth: 'api_key',
    personTokens: true,
    body: issueCredentialBody,
    success: { status: 200, schema: credentialSchema, description: 'The token and when it expires.' },
    errors: [
      'connection_required',
      'policy_denied',
      'approval_required',
      'policy_unavailable',
      'scope_not_granted',
      'forbidden',
      'no_source_api',
      'connection_needs_reauth',
      'source_error',
    ],
    audit: { action: 'credential_issued', intent: true },
  })
  async issue(
    @Caller() caller: ApplicationCaller,
    @Body() body: z.infer<typeof issueCredentialBody>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const userId = personOf(caller, body.userId);
    setAuditSubject(request, { integration: body.integration });
    const grant = await this.credentials.usableGrant(caller, userId, body.integration);
    // The person is named in the trail only once their connection is known to this application.
    setAuditSubject(request, {
      userId,
      connectionId: grant.connectionId,
      resource: `connection:${grant.connectionId}`,
    });
    if (caller.tokenScopes) {
      // The source token can do all the grant can: an access token must carry every scope of it.
      const missing = grant.scopes.filter((scope) => !caller.tokenScopes?.includes(scope));
      if (missing.length > 0) throw insufficientScope(reply, this.env, missing);
    }
    const verdict = await this.credentials.checkIntegration(caller, userId, grant.scopes);
    setAuditSubject(request, { policy: auditPolicyOf(verdict.decision) });
    if (verdict.error) throw verdict.error;
    return this.credentials.token(grant.connectionId);
  }
}
