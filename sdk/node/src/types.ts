// Public shapes of the API, derived from the generated OpenAPI types (src/generated/api.ts)
// so that a change in the gateway's schemas is a type error here, not a surprise at run time.
import type { components, paths } from './generated/api.js';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;
/** The JSON body of a route's success answer. */
type Success<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends {
  responses: infer R;
}
  ? S extends keyof R
    ? Json<R[S]>
    : never
  : never;
/** The JSON request body of a route. */
type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;

/** An RFC 9457 problem as the gateway sends it. */
export type Problem = components['schemas']['Problem'];
/** Every stable error code the gateway answers with; switch on `GatewayError.code`. */
export type ErrorCode = Problem['code'];

export type ConnectSessionInput = Body<'/v1/connect/sessions', 'post'>;
export type ConnectSession = Success<'/v1/connect/sessions', 'post', 201>;
export type Connection = Success<'/v1/connections/{connectionId}', 'get', 200>;
export type RevokedGrant = Success<'/v1/connections/{connectionId}/grant', 'delete', 200>;

type RecordsRoute = paths['/v1/connections/{connectionId}/records']['get'];
export type RecordsPage = Success<'/v1/connections/{connectionId}/records', 'get', 200>;
export type ConnectionRecord = RecordsPage['records'][number];
/** The record types of the catalog (docs/record-types.md). */
export type RecordType = NonNullable<NonNullable<RecordsRoute['parameters']['query']>['type']>;

export type SyncStatus = Success<'/v1/connections/{connectionId}/sync', 'get', 200>;
export type SyncRequested = Success<'/v1/connections/{connectionId}/sync', 'post', 202>;
export type ImportResult = Success<'/v1/connections/{connectionId}/imports', 'post', 200>;

export type Organization = Success<'/v1/admin/organizations/{orgId}', 'get', 200>;
export type OrganizationInput = Body<'/v1/admin/organizations', 'post'>;
export type Application = Success<'/v1/admin/organizations/{orgId}/applications/{applicationId}', 'get', 200>;
export type ApplicationInput = Body<'/v1/admin/organizations/{orgId}/applications', 'post'>;
export type ApplicationChange = Body<'/v1/admin/organizations/{orgId}/applications/{applicationId}', 'patch'>;
/** How an application authenticates as an OAuth client; the answer carries a new secret once. */
export type OAuthClientInput = Body<'/v1/admin/organizations/{orgId}/applications/{applicationId}/oauth-client', 'put'>;
export type OAuthClient = Success<
  '/v1/admin/organizations/{orgId}/applications/{applicationId}/oauth-client',
  'put',
  200
>;
/** An organization's own OpenID Connect IdP (organization SSO); the client secret is never returned. */
export type OrganizationSso = Success<'/v1/admin/organizations/{orgId}/sso', 'get', 200>;
export type OrganizationSsoInput = Body<'/v1/admin/organizations/{orgId}/sso', 'put'>;
/** The OAuth grants (token families) an application holds, one per person. */
export type ApplicationOAuthGrants = Success<
  '/v1/admin/organizations/{orgId}/applications/{applicationId}/oauth-grants',
  'get',
  200
>;
export type RevokedOAuthTokens = Success<
  '/v1/admin/organizations/{orgId}/applications/{applicationId}/oauth-grants',
  'delete',
  200
>;
/** An initial access token for dynamic client registration (RFC 7591); never the token itself. */
export type RegistrationToken = Success<
  '/v1/admin/organizations/{orgId}/oauth/registration-tokens/{tokenId}',
  'delete',
  200
>;
/** The token is in `token`, this once: only its hash is stored. */
export type IssuedRegistrationToken = Success<'/v1/admin/organizations/{orgId}/oauth/registration-tokens', 'post', 201>;
export type RegistrationTokenInput = Body<'/v1/admin/organizations/{orgId}/oauth/registration-tokens', 'post'>;
export type ApiKey = Success<'/v1/admin/applications/{applicationId}/api-keys/{keyId}', 'delete', 200>;
export type IssuedApiKey = Success<'/v1/admin/applications/{applicationId}/api-keys', 'post', 201>;
export type OrgIntegrations = Success<'/v1/admin/organizations/{orgId}/policy/integrations', 'put', 200>;
/** An org's remote MCP server (gateway mode, docs/gateway-mode.md) with its tools as last read. */
export type McpServer = Success<'/v1/admin/organizations/{orgId}/mcp-servers/{integration}', 'put', 200>;
export type McpServerInput = Body<'/v1/admin/organizations/{orgId}/mcp-servers/{integration}', 'put'>;
/** An org's named virtual server (gateway mode): a chosen set of its MCP servers' integrations and tools at `/mcp/v/<name>`. */
export type McpVirtualServer = Success<'/v1/admin/organizations/{orgId}/mcp-virtual-servers/{name}', 'put', 200>;
export type McpVirtualServerInput = Body<'/v1/admin/organizations/{orgId}/mcp-virtual-servers/{name}', 'put'>;

export type CredentialInput = Body<'/v1/credentials', 'post'>;
export type Credential = Success<'/v1/credentials', 'post', 200>;

/** An application's webhook endpoint (docs/webhooks.md); `secret` only in the answer that created it. */
export type WebhookEndpoint = Success<
  '/v1/admin/organizations/{orgId}/applications/{applicationId}/webhook',
  'put',
  200
>;
/** One page of your webhook delivery log, newest first. */
export type WebhookMessagesPage = Success<'/v1/webhook/messages', 'get', 200>;
export type WebhookMessage = WebhookMessagesPage['messages'][number];
