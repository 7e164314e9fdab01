import { Body, Controller, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { id } from '../http/input.js';
import { Route } from '../http/route.decorator.js';
import {
  apiKeySchema,
  applicationSchema,
  issuedApiKeySchema,
  issuedRegistrationTokenSchema,
  oauthClientSchema,
  organizationSchema,
  registrationTokenSchema,
} from './admin.schemas.js';
import { AdminService } from './admin.service.js';

const tags = ['admin'];
const orgParams = z.strictObject({ orgId: id() });
const appParams = z.strictObject({ orgId: id(), applicationId: id() });
const keyParams = z.strictObject({ applicationId: id() });
const revokeParams = z.strictObject({ applicationId: id(), keyId: id() });
const registrationTokenParams = z.strictObject({ orgId: id(), tokenId: id() });
const issueRegistrationTokenBody = z.strictObject({
  expiresInSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400)
    .describe('How long the token may register clients (60 seconds to 30 days; default one day).'),
  singleUse: z.boolean().default(true).describe('True (default): the token registers one client, then is spent.'),
});

const createOrganizationBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  slug: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/)
    .optional()
    .describe('URL-safe handle; derived from the name when absent.'),
});
const createApplicationBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  callbackUrls: z
    .array(z.string().max(2_000))
    .max(20)
    .default([])
    .describe(
      'Exact callback URLs: https, or http for localhost/127.0.0.1; no fragments. At least one, except for an MCP client allowed by clientMetadataUrl (none: its document lists its redirect URIs).',
    ),
  clientMetadataUrl: z
    .string()
    .max(2_000)
    .optional()
    .describe(
      'Allows an MCP client by its Client ID Metadata Document URL (https, with a path, in normalized form): the application is that client in this organization. The client presents the URL as its client_id; a person of this organization who signs in gets tokens naming this application. Many organizations may allow the same URL, each with its own application.',
    ),
  integrations: z.array(z.string().max(63)).max(50).default([]),
  scopes: z
    .array(z.string().max(200))
    .max(200)
    .default([])
    .describe('Each `<integration>:...` of a declared integration.'),
});
const updateApplicationBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    callbackUrls: z.array(z.string().max(2_000)).min(1).max(20).optional().describe('Replaces the list.'),
    integrations: z.array(z.string().max(63)).max(50).optional().describe('Replaces the list.'),
    scopes: z.array(z.string().max(200)).max(200).optional().describe('Replaces the list.'),
    status: z
      .enum(['active', 'disabled'])
      .optional()
      .describe('`disabled`: its API keys stop working on the next request, and policy allows it nothing.'),
  })
  .refine((b) => Object.keys(b).length > 0, 'must change at least one field');
type UpdateApplicationBody = z.infer<typeof updateApplicationBody>;
const oauthClientBody = z.strictObject({
  tokenEndpointAuthMethod: z
    .enum(['client_secret_basic', 'private_key_jwt', 'none'])
    .describe(
      'How the application authenticates at the OAuth token endpoint: a client secret, a key it holds (private_key_jwt), or nothing (a public client: PKCE only).',
    ),
  jwks: z
    .strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) })
    .optional()
    .describe('private_key_jwt: the public keys (a JWK Set); or jwksUri.'),
  jwksUri: z.url().max(2_000).optional().describe('private_key_jwt: where the public keys are published (https).'),
  rotateSecret: z
    .boolean()
    .default(false)
    .describe('client_secret_basic: issue a new secret, shown once; the previous one stops working at once.'),
  idpClientId: z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe(
      "Confidential clients: the application's own client id at the organization's SSO IdP. ID tokens that IdP issued to it may then be exchanged at the token endpoint for access tokens acting for the person (RFC 8693, subject_token_type id_token), without a browser. Absent: no token exchange.",
    ),
});
type CreateOrganizationBody = z.infer<typeof createOrganizationBody>;
type CreateApplicationBody = z.infer<typeof createApplicationBody>;

/**
 * The operator's admin API (`Authorization: Bearer <OPERATOR_TOKEN>`): bootstrap
 * organizations, their applications and API keys. `pnpm cg` wraps it.
 */
@Controller('v1/admin')
export class AdminController {
  constructor(private readonly admin: AdminService) {}

  @Route({
    method: 'POST',
    path: 'organizations',
    summary: 'Create an organization',
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    body: createOrganizationBody,
    success: { status: 201, schema: organizationSchema, description: 'Created.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'conflict'],
  })
  async createOrganization(@Body() body: CreateOrganizationBody, @Req() request: FastifyRequest) {
    const org = await this.admin.createOrganization(body);
    setAuditSubject(request, { orgId: org.id, resource: `organization:${org.id}` });
    return org;
  }

  @Route({
    method: 'GET',
    path: 'organizations',
    summary: 'List organizations',
    tags,
    auth: 'operator',
    success: {
      status: 200,
      schema: z.object({ organizations: z.array(organizationSchema) }),
      description: 'Every organization.',
    },
    errors: ['unauthenticated', 'admin_disabled'],
  })
  listOrganizations() {
    return this.admin.listOrganizations();
  }

  @Route({
    method: 'GET',
    path: 'organizations/:orgId',
    summary: 'Get an organization',
    tags,
    auth: 'operator',
    params: orgParams,
    success: { status: 200, schema: organizationSchema, description: 'The organization.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  getOrganization(@Param() params: z.infer<typeof orgParams>) {
    return this.admin.getOrganization(params.orgId);
  }

  @Route({
    method: 'POST',
    path: 'organizations/:orgId/applications',
    summary: 'Create an application',
    description:
      'Publishes control.v1.application_changed: its integrations and scopes become the app-layer policy allows.',
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: orgParams,
    body: createApplicationBody,
    success: { status: 201, schema: applicationSchema, description: 'Created.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found', 'conflict'],
  })
  async createApplication(
    @Param() params: z.infer<typeof orgParams>,
    @Body() body: CreateApplicationBody,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: params.orgId });
    const app = await this.admin.createApplication(params.orgId, body);
    setAuditSubject(request, { applicationId: app.id, resource: `application:${app.id}` });
    return app;
  }

  @Route({
    method: 'PATCH',
    path: 'organizations/:orgId/applications/:applicationId',
    summary: 'Change an application',
    description:
      'Lists given replace the stored ones. Publishes control.v1.application_changed with the next revision.',
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: appParams,
    body: updateApplicationBody,
    success: { status: 200, schema: applicationSchema, description: 'The application as it now is.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async updateApplication(
    @Param() params: z.infer<typeof appParams>,
    @Body() body: UpdateApplicationBody,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, {
      orgId: params.orgId,
      applicationId: params.applicationId,
      resource: `application:${params.applicationId}`,
    });
    return this.admin.updateApplication(params.orgId, params.applicationId, body);
  }

  @Route({
    method: 'PUT',
    path: 'organizations/:orgId/applications/:applicationId/oauth-client',
    summary: "Set an application's OAuth client authentication",
    description:
      "Every application is an OAuth client of the gateway's authorization server under its client id (docs/identity.md). Switching method removes the old method's secret or keys.",
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: appParams,
    body: oauthClientBody,
    success: {
      status: 200,
      schema: oauthClientSchema,
      description: 'The client settings; the new secret when one was issued.',
    },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async configureOAuthClient(
    @Param() params: z.infer<typeof appParams>,
    @Body() body: z.infer<typeof oauthClientBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, {
      orgId: params.orgId,
      applicationId: params.applicationId,
      resource: `application:${params.applicationId}:oauth_client`,
    });
    return this.admin.configureOAuthClient(params.orgId, params.applicationId, body);
  }

  @Route({
    method: 'GET',
    path: 'organizations/:orgId/applications',
    summary: "List an organization's applications",
    tags,
    auth: 'operator',
    params: orgParams,
    success: {
      status: 200,
      schema: z.object({ applications: z.array(applicationSchema) }),
      description: 'Its applications.',
    },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  listApplications(@Param() params: z.infer<typeof orgParams>) {
    return this.admin.listApplications(params.orgId);
  }

  @Route({
    method: 'GET',
    path: 'organizations/:orgId/applications/:applicationId',
    summary: 'Get an application',
    tags,
    auth: 'operator',
    params: appParams,
    success: { status: 200, schema: applicationSchema, description: 'The application.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  getApplication(@Param() params: z.infer<typeof appParams>) {
    return this.admin.getApplication(params.orgId, params.applicationId);
  }

  @Route({
    method: 'POST',
    path: 'applications/:applicationId/api-keys',
    summary: 'Issue an API key',
    description: 'The response carries the whole key once; only its hash is kept.',
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: keyParams,
    success: { status: 201, schema: issuedApiKeySchema, description: 'Issued.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  async issueApiKey(@Param() params: z.infer<typeof keyParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { applicationId: params.applicationId });
    const key = await this.admin.issueApiKey(params.applicationId);
    // The trail names the key by id; the secret itself never goes near it.
    setAuditSubject(request, { orgId: key.orgId, resource: `api_key:${key.id}` });
    return key;
  }

  @Route({
    method: 'GET',
    path: 'applications/:applicationId/api-keys',
    summary: "List an application's API keys",
    tags,
    auth: 'operator',
    params: keyParams,
    success: {
      status: 200,
      schema: z.object({ apiKeys: z.array(apiKeySchema) }),
      description: 'Its keys (never the secrets).',
    },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  listApiKeys(@Param() params: z.infer<typeof keyParams>) {
    return this.admin.listApiKeys(params.applicationId);
  }

  @Route({
    method: 'DELETE',
    path: 'applications/:applicationId/api-keys/:keyId',
    summary: 'Revoke an API key',
    description: 'Once this returns, the next request with the key is refused (401).',
    tags,
    auth: 'operator',
    audit: { action: 'revocation' },
    params: revokeParams,
    success: { status: 200, schema: apiKeySchema, description: 'Revoked (idempotent).' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  async revokeApiKey(@Param() params: z.infer<typeof revokeParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { applicationId: params.applicationId, resource: `api_key:${params.keyId}` });
    const key = await this.admin.revokeApiKey(params.applicationId, params.keyId);
    setAuditSubject(request, { orgId: key.orgId });
    return key;
  }

  @Route({
    method: 'POST',
    path: 'organizations/:orgId/oauth/registration-tokens',
    summary: 'Issue an initial access token for dynamic client registration',
    description:
      "With OAUTH_DYNAMIC_REGISTRATION=true, an OAuth client presenting this token to the authorization server's registration endpoint (RFC 7591) becomes an application of this organization, with no capabilities until they are set here (docs/identity.md). The response carries the token once; only its hash is kept.",
    tags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: orgParams,
    body: issueRegistrationTokenBody,
    success: { status: 201, schema: issuedRegistrationTokenSchema, description: 'Issued.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async issueRegistrationToken(
    @Param() params: z.infer<typeof orgParams>,
    @Body() body: z.infer<typeof issueRegistrationTokenBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { orgId: params.orgId });
    const issued = await this.admin.issueRegistrationToken(params.orgId, body);
    // The trail names the token by id; the token itself never goes near it.
    setAuditSubject(request, { resource: `oauth_registration_token:${issued.id}` });
    return issued;
  }

  @Route({
    method: 'GET',
    path: 'organizations/:orgId/oauth/registration-tokens',
    summary: "List an organization's initial access tokens",
    tags,
    auth: 'operator',
    params: orgParams,
    success: {
      status: 200,
      schema: z.object({ registrationTokens: z.array(registrationTokenSchema) }),
      description: 'Its tokens (never the tokens themselves).',
    },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  listRegistrationTokens(@Param() params: z.infer<typeof orgParams>) {
    return this.admin.listRegistrationTokens(params.orgId);
  }

  @Route({
    method: 'DELETE',
    path: 'organizations/:orgId/oauth/registration-tokens/:tokenId',
    summary: 'Revoke an initial access token',
    description:
      'It registers no client after this returns; clients already registered stay (disable them as applications).',
    tags,
    auth: 'operator',
    audit: { action: 'revocation' },
    params: registrationTokenParams,
    success: { status: 200, schema: registrationTokenSchema, description: 'Revoked (idempotent).' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  revokeRegistrationToken(@Param() params: z.infer<typeof registrationTokenParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { orgId: params.orgId, resource: `oauth_registration_token:${params.tokenId}` });
    return this.admin.revokeRegistrationToken(params.orgId, params.tokenId);
  }
}
