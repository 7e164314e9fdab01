import type { Transport } from './http.js';
import type {
  ApiKey,
  Application,
  ApplicationChange,
  ApplicationInput,
  ApplicationOAuthGrants,
  IssuedApiKey,
  IssuedRegistrationToken,
  McpServer,
  McpServerInput,
  McpVirtualServer,
  McpVirtualServerInput,
  OAuthClient,
  OAuthClientInput,
  Organization,
  OrganizationInput,
  OrganizationSso,
  OrganizationSsoInput,
  OrgIntegrations,
  RegistrationToken,
  RegistrationTokenInput,
  RevokedOAuthTokens,
  WebhookEndpoint,
} from './types.js';

const seg = encodeURIComponent;

/**
 * The operator's admin API (/v1/admin, the gateway's OPERATOR_TOKEN): tenants, applications,
 * API keys and which integrations an organization allows. What `pnpm cg` does.
 */
export class AdminClient {
  constructor(private readonly http: Transport) {}

  readonly organizations = {
    create: (input: OrganizationInput) =>
      this.http.request<Organization>({ method: 'POST', path: '/v1/admin/organizations', json: input }),
    list: () =>
      this.http.request<{ organizations: Organization[] }>({ method: 'GET', path: '/v1/admin/organizations' }),
    get: (orgId: string) =>
      this.http.request<Organization>({ method: 'GET', path: `/v1/admin/organizations/${seg(orgId)}` }),
  };

  readonly applications = {
    create: (orgId: string, input: ApplicationInput) =>
      this.http.request<Application>({
        method: 'POST',
        path: `/v1/admin/organizations/${seg(orgId)}/applications`,
        json: input,
      }),
    /** Lists given replace the stored ones. */
    update: (orgId: string, applicationId: string, change: ApplicationChange) =>
      this.http.request<Application>({
        method: 'PATCH',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}`,
        json: change,
      }),
    list: (orgId: string) =>
      this.http.request<{ applications: Application[] }>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/applications`,
      }),
    get: (orgId: string, applicationId: string) =>
      this.http.request<Application>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}`,
      }),
    /** The application as an OAuth client (docs/identity.md); a rotated secret is in `clientSecret`, this once. */
    configureOAuthClient: (orgId: string, applicationId: string, input: OAuthClientInput) =>
      this.http.request<OAuthClient>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/oauth-client`,
        json: input,
      }),
    /** Every person the application holds OAuth tokens for. */
    listOAuthGrants: (orgId: string, applicationId: string) =>
      this.http.request<ApplicationOAuthGrants>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/oauth-grants`,
      }),
    /** Revokes all of the application's OAuth tokens: refused by every gateway from the next request. */
    revokeOAuthTokens: (orgId: string, applicationId: string) =>
      this.http.request<RevokedOAuthTokens>({
        method: 'DELETE',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/oauth-grants`,
      }),
  };

  /**
   * Initial access tokens for dynamic client registration (RFC 7591, with
   * OAUTH_DYNAMIC_REGISTRATION=true): a client registered with one becomes an application of
   * the organization, with no capabilities until they are set (docs/identity.md).
   */
  readonly registrationTokens = {
    /** The token is in `token`, this once. Single use and one day unless said otherwise. */
    issue: (orgId: string, input: RegistrationTokenInput = {}) =>
      this.http.request<IssuedRegistrationToken>({
        method: 'POST',
        path: `/v1/admin/organizations/${seg(orgId)}/oauth/registration-tokens`,
        json: input,
      }),
    list: (orgId: string) =>
      this.http.request<{ registrationTokens: RegistrationToken[] }>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/oauth/registration-tokens`,
      }),
    revoke: (orgId: string, tokenId: string) =>
      this.http.request<RegistrationToken>({
        method: 'DELETE',
        path: `/v1/admin/organizations/${seg(orgId)}/oauth/registration-tokens/${seg(tokenId)}`,
      }),
  };

  readonly apiKeys = {
    /** The whole key is in `secret`, this once: only its hash is stored. */
    issue: (applicationId: string) =>
      this.http.request<IssuedApiKey>({
        method: 'POST',
        path: `/v1/admin/applications/${seg(applicationId)}/api-keys`,
      }),
    list: (applicationId: string) =>
      this.http.request<{ apiKeys: ApiKey[] }>({
        method: 'GET',
        path: `/v1/admin/applications/${seg(applicationId)}/api-keys`,
      }),
    revoke: (applicationId: string, keyId: string) =>
      this.http.request<ApiKey>({
        method: 'DELETE',
        path: `/v1/admin/applications/${seg(applicationId)}/api-keys/${seg(keyId)}`,
      }),
  };

  /**
   * An organization's own OpenID Connect IdP: its people sign in through it (docs/identity.md).
   * Register `<gateway>/v1/auth/sso/callback` as the redirect URI at the IdP.
   */
  readonly sso = {
    get: (orgId: string) =>
      this.http.request<OrganizationSso>({ method: 'GET', path: `/v1/admin/organizations/${seg(orgId)}/sso` }),
    /** Creates or replaces it; the issuer's discovery must answer. Without clientSecret the stored one is kept. */
    set: (orgId: string, input: OrganizationSsoInput) =>
      this.http.request<OrganizationSso>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/sso`,
        json: input,
        idempotent: true,
      }),
    remove: (orgId: string) =>
      this.http.request<void>({ method: 'DELETE', path: `/v1/admin/organizations/${seg(orgId)}/sso` }),
  };

  /**
   * An application's webhook endpoint (docs/webhooks.md). `set` creates the signing secret on
   * first use and returns it once (`secret`); `rotateSecret` returns the new one, the old one
   * signing beside it for `overlapSeconds` (default 24 h).
   */
  readonly webhooks = {
    set: (orgId: string, applicationId: string, url: string) =>
      this.http.request<WebhookEndpoint>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/webhook`,
        json: { url },
        idempotent: true,
      }),
    get: (orgId: string, applicationId: string) =>
      this.http.request<WebhookEndpoint>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/webhook`,
      }),
    remove: (orgId: string, applicationId: string) =>
      this.http.request<{ deleted: true }>({
        method: 'DELETE',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/webhook`,
      }),
    rotateSecret: (orgId: string, applicationId: string, overlapSeconds?: number) =>
      this.http.request<WebhookEndpoint>({
        method: 'POST',
        path: `/v1/admin/organizations/${seg(orgId)}/applications/${seg(applicationId)}/webhook/rotate-secret`,
        json: overlapSeconds === undefined ? {} : { overlapSeconds },
      }),
  };

  /** The org layer of policy allows no integration until one is listed here (docs/policy.md). */
  readonly integrations = {
    get: (orgId: string) =>
      this.http.request<OrgIntegrations>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/policy/integrations`,
      }),
    /** Replaces the list. PUT of the whole list: repeating it changes nothing, so it is retried. */
    set: (orgId: string, integrations: string[]) =>
      this.http.request<OrgIntegrations>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/policy/integrations`,
        json: { integrations },
        idempotent: true,
      }),
  };

  /**
   * An org's remote MCP servers, one per integration (gateway mode, docs/gateway-mode.md):
   * their tools become capabilities `<integration>:<tool>` and agents reach them at /mcp.
   */
  readonly mcpServers = {
    /** Registers or changes the server; PUT of the whole registration, so it is retried. */
    put: (orgId: string, integration: string, input: McpServerInput) =>
      this.http.request<McpServer>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-servers/${seg(integration)}`,
        json: input,
        idempotent: true,
      }),
    list: (orgId: string) =>
      this.http.request<{ servers: McpServer[] }>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-servers`,
      }),
    remove: (orgId: string, integration: string) =>
      this.http.request<McpServer>({
        method: 'DELETE',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-servers/${seg(integration)}`,
      }),
  };

  /**
   * An org's named virtual servers (gateway mode, docs/gateway-mode.md): each a chosen set of
   * its MCP servers' integrations and tools, reached by agents at `/mcp/v/<name>`.
   */
  readonly mcpVirtualServers = {
    /** Creates or replaces the whole selection, so it is retried. */
    put: (orgId: string, name: string, input: McpVirtualServerInput) =>
      this.http.request<McpVirtualServer>({
        method: 'PUT',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-virtual-servers/${seg(name)}`,
        json: input,
        idempotent: true,
      }),
    list: (orgId: string) =>
      this.http.request<{ servers: McpVirtualServer[] }>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-virtual-servers`,
      }),
    get: (orgId: string, name: string) =>
      this.http.request<McpVirtualServer>({
        method: 'GET',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-virtual-servers/${seg(name)}`,
      }),
    remove: (orgId: string, name: string) =>
      this.http.request<McpVirtualServer>({
        method: 'DELETE',
        path: `/v1/admin/organizations/${seg(orgId)}/mcp-virtual-servers/${seg(name)}`,
      }),
  };
}
