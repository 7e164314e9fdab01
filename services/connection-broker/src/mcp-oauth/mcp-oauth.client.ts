import { createHash, randomBytes } from 'node:crypto';

import type { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import type { OutboundPolicy } from '@context-gateway/service-kit';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';

import type { Prisma } from '../generated/prisma/client.js';
import type { Credential } from '../vault/credential-vault.js';
import {
  type AuthorizationServerMetadata,
  type DiscoveredAuthorization,
  discoverMcpAuthorization,
  type FetchLike,
} from './mcp-oauth-discovery.js';
import type { McpOAuthServer, McpOAuthServerInput } from './mcp-oauth-servers.repository.js';

/** Discovery and dynamic registration at most this long in all (the gateway's RPC to the broker waits 30 s). */
const REGISTER_DEADLINE_MS = 20_000;

export interface McpOAuthOptions {
  /** The gateway's public address: redirect URIs and Client ID Metadata Documents are under it. */
  gatewayUrl: string;
  policy: OutboundPolicy;
  timeoutMs: number;
}

/** Seals and opens the client secret under the broker's KEK (the credential vault). */
export interface SecretSealer {
  sealSecret(secret: Uint8Array, context: Readonly<Record<string, string>>): Promise<Buffer>;
  openSecret(sealed: Uint8Array, context: Readonly<Record<string, string>>): Promise<Buffer>;
}

export interface RegisterInput {
  orgId: string;
  integration: string;
  url: string;
  /** The operator's pre-registered client (empty: none). */
  clientId: string;
  clientSecret: string;
}

/** A client secret is bound to its org and integration: a sealed one copied onto another row does not open. */
function secretContext(orgId: string, integration: string) {
  return { org: orgId, integration, purpose: 'mcp-oauth-client-secret' };
}

/**
 * What a connect session started against: the registration's server, resource, issuer, client
 * and token endpoint. Bound into the session's sealed PKCE verifier at consent, so a callback
 * arriving after the server was registered again (another authorization server, another client)
 * cannot send the code and verifier to the new token endpoint.
 */
export function registrationBinding(server: McpOAuthServer): string {
  const metadata = server.metadata as { token_endpoint?: unknown };
  const parts = [
    server.url,
    server.resource,
    server.issuer,
    server.clientId,
    typeof metadata.token_endpoint === 'string' ? metadata.token_endpoint : '',
    // Only when it has one: sessions of registrations from before keys stay bound as they were.
    ...(server.registrationKey ? [server.registrationKey] : []),
  ];
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/**
 * A public client (no secret: a metadata document, or registration without one) on the
 * shared redirect URI cannot tell authorization servers apart but by `iss`. A registration
 * with its own redirect URI can: its callback says which registration the code is for.
 */
export function needsIssOnCallback(server: McpOAuthServer): boolean {
  return !server.clientSecretSealed && !server.registrationKey;
}

/** A new registration's key: opaque, 128 random bits, URL-safe (22 characters). */
function newRegistrationKey(): string {
  return randomBytes(16).toString('base64url');
}

/** How a confidential client authenticates: what the server offers, `client_secret_basic` being RFC 8414's default. */
function secretMethod(as: AuthorizationServerMetadata): 'client_secret_post' | 'client_secret_basic' {
  const offered = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  return offered.includes('client_secret_post') || !offered.includes('client_secret_basic')
    ? 'client_secret_post'
    : 'client_secret_basic';
}

/**
 * OAuth with a remote MCP server's own authorization server (MCP authorization, 2025-11-25
 * and 2026-07-28), through openid-client: discovery and client identification when the
 * operator registers the server, then authorization code + PKCE S256 with `resource` (RFC
 * 8707) on the authorization and token requests, `iss` checked (RFC 9207) where the server
 * advertises it, and refresh with `resource`. Every request to the server or its
 * authorization server goes through the guarded `fetch`.
 */
export class McpOAuthClient {
  readonly #configs = new Map<string, { stamp: number; config: client.Configuration }>();

  constructor(
    private readonly options: McpOAuthOptions,
    private readonly fetch: FetchLike,
    private readonly sealer: SecretSealer,
    private readonly clock: Clock,
  ) {}

  /**
   * Discovers the server's authorization and how the gateway is identified there, in the MCP
   * specification's order: the operator's pre-registered client; else a Client ID Metadata
   * Document when the authorization server supports them (and the gateway's document URL is
   * https); else dynamic client registration (RFC 7591); else `upstream_auth_client_unavailable`.
   */
  async register(input: RegisterInput, existing?: McpOAuthServer | null): Promise<McpOAuthServerInput> {
    // Discovery and registration together end before the caller's RPC gives up (30 s): a
    // registration stored after the gateway answered "failed" would be one the operator never saw.
    const deadline = AbortSignal.timeout(REGISTER_DEADLINE_MS);
    const fetch: FetchLike = (url, init) =>
      this.fetch(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline });
    const found = await discoverMcpAuthorization(input.url, fetch, this.options.policy);
    const as = found.authorizationServer;
    // Registered again at the same server and authorization server: the client it has is kept
    // (a new dynamic registration would strand every person's refresh token and orphan the old
    // client; a pre-registered client's secret stays unless a new one is given).
    const same = existing && existing.url === input.url && existing.issuer === as.issuer ? existing : undefined;
    // A metadata document's client is kept too: its refresh tokens are bound to that client id.
    const keepClient =
      (same?.clientSource === 'dynamic_registration' || same?.clientSource === 'client_id_metadata_document') &&
      !input.clientId;
    const sameOperatorClient = same?.clientSource === 'pre_registered' && same.clientId === input.clientId;
    const keepSecret = sameOperatorClient && !input.clientSecret;
    if (same && (keepClient || keepSecret))
      return {
        ...this.discovered(input, found),
        clientSource: same.clientSource,
        clientId: same.clientId,
        clientAuthMethod: same.clientAuthMethod,
        clientSecretSealed: same.clientSecretSealed,
        registrationKey: same.registrationKey,
      };
    // The operator's client keeps the redirect URI they registered it with (a new secret changes
    // nothing there); every other new client gets a registration of its own.
    const registrationKey = same && sameOperatorClient ? same.registrationKey : newRegistrationKey();
    let clientSource: string;
    let clientId: string;
    let clientSecret: string | undefined;
    let clientAuthMethod: string;
    if (input.clientId) {
      clientSource = 'pre_registered';
      clientId = input.clientId;
      clientSecret = input.clientSecret || undefined;
      clientAuthMethod = clientSecret ? secretMethod(as) : 'none';
    } else if (
      as.client_id_metadata_document_supported === true &&
      new URL(this.options.gatewayUrl).protocol === 'https:' &&
      registrationKey
    ) {
      clientSource = 'client_id_metadata_document';
      clientId = this.clientMetadataDocumentUrl(registrationKey);
      clientAuthMethod = 'none';
    } else if (as.registration_endpoint) {
      const registered = await this.registerDynamically(as, fetch, this.redirectUriOf(registrationKey));
      clientSource = 'dynamic_registration';
      clientId = registered.clientId;
      clientSecret = registered.clientSecret;
      clientAuthMethod = registered.authMethod;
    } else {
      throw new AppError(
        'upstream_auth_client_unavailable',
        "The MCP server's authorization server takes neither Client ID Metadata Documents nor dynamic registration: give a pre-registered client",
        [{ path: 'oauthClient', message: 'required for this authorization server' }],
      );
    }
    return {
      ...this.discovered(input, found),
      clientSource,
      clientId,
      clientAuthMethod,
      registrationKey,
      clientSecretSealed: clientSecret
        ? new Uint8Array(
            await this.sealer.sealSecret(
              Buffer.from(clientSecret, 'utf8'),
              secretContext(input.orgId, input.integration),
            ),
          )
        : null,
    };
  }

  /** What discovery found, as stored. */
  private discovered(input: RegisterInput, found: DiscoveredAuthorization) {
    return {
      orgId: input.orgId,
      integration: input.integration,
      url: input.url,
      resource: found.resource,
      resourceMetadataUrl: found.resourceMetadataUrl,
      issuer: found.authorizationServer.issuer,
      metadata: JSON.parse(JSON.stringify(found.authorizationServer)) as Prisma.InputJsonObject,
      scopes: found.scopes,
      resourceName: found.resourceName ?? null,
    };
  }

  /**
   * Where the registration's authorization server sends the browser back: its own URI, else
   * (a client made before registration keys) the one shared with the catalog's sources.
   */
  redirectUri(server: Pick<McpOAuthServer, 'registrationKey'>): string {
    return this.redirectUriOf(server.registrationKey);
  }

  private redirectUriOf(registrationKey: string | null): string {
    const path = registrationKey ? `/v1/connect/mcp/callback/${registrationKey}` : '/v1/connect/callback';
    return new URL(path, this.options.gatewayUrl).href;
  }

  /** The registration's Client ID Metadata Document (served by the gateway; its URL is the client id). */
  private clientMetadataDocumentUrl(registrationKey: string): string {
    return new URL(`/v1/connect/client-metadata/${registrationKey}.json`, this.options.gatewayUrl).href;
  }

  private async registerDynamically(
    as: AuthorizationServerMetadata,
    fetch: FetchLike,
    redirectUri: string,
  ): Promise<{ clientId: string; clientSecret?: string; authMethod: string }> {
    const method = secretMethod(as);
    try {
      const response = await oauth.dynamicClientRegistrationRequest(
        as as oauth.AuthorizationServer,
        {
          client_name: 'Context Gateway',
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: method,
        },
        {
          [oauth.customFetch]: fetch,
          ...(this.options.policy.allowHttp ? { [oauth.allowInsecureRequests]: true } : {}),
          signal: AbortSignal.timeout(this.options.timeoutMs),
        },
      );
      const registered = await oauth.processDynamicClientRegistrationResponse(response);
      const secret = typeof registered['client_secret'] === 'string' ? registered['client_secret'] : undefined;
      return {
        clientId: registered.client_id,
        ...(secret ? { clientSecret: secret } : {}),
        authMethod:
          secret && typeof registered.token_endpoint_auth_method === 'string'
            ? registered.token_endpoint_auth_method
            : secret
              ? method
              : 'none',
      };
    } catch (error) {
      const code = error instanceof oauth.ResponseBodyError ? error.error : undefined;
      throw new AppError(
        'upstream_auth_client_unavailable',
        `The authorization server refused the dynamic client registration${code ? ` (${code.slice(0, 60)})` : ''}`,
        [{ path: 'oauthClient', message: 'dynamic registration failed; give a pre-registered client' }],
      );
    }
  }

  async #config(server: McpOAuthServer): Promise<client.Configuration> {
    const key = `${server.orgId}\u0000${server.integration}`;
    const cached = this.#configs.get(key);
    if (cached && cached.stamp === server.updatedAt.getTime()) return cached.config;
    const secret = server.clientSecretSealed
      ? (
          await this.sealer.openSecret(server.clientSecretSealed, secretContext(server.orgId, server.integration))
        ).toString('utf8')
      : undefined;
    const auth =
      secret && server.clientAuthMethod === 'client_secret_basic'
        ? client.ClientSecretBasic(secret)
        : secret
          ? client.ClientSecretPost(secret)
          : client.None();
    const config = new client.Configuration(
      server.metadata as unknown as client.ServerMetadata,
      server.clientId,
      { redirect_uris: [this.redirectUri(server)] },
      auth,
    );
    config[client.customFetch] = this.fetch;
    config.timeout = Math.ceil(this.options.timeoutMs / 1000);
    if (this.options.policy.allowHttp) client.allowInsecureRequests(config);
    this.#configs.set(key, { stamp: server.updatedAt.getTime(), config });
    return config;
  }

  /** A fresh state and PKCE verifier, and the authorization URL carrying them and the `resource`. */
  async authorizationRequest(
    server: McpOAuthServer,
    scopes: readonly string[],
  ): Promise<{ url: string; state: string; codeVerifier: string }> {
    const config = await this.#config(server);
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri(server),
      ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
      resource: server.resource,
      state,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, state, codeVerifier };
  }

  /** Validates the callback (state, `iss`, error) and exchanges the code with the verifier and the `resource`. */
  async exchange(
    server: McpOAuthServer,
    callbackQuery: string,
    expectedState: string,
    codeVerifier: string,
  ): Promise<Credential> {
    const config = await this.#config(server);
    const currentUrl = new URL(this.redirectUri(server));
    currentUrl.search = callbackQuery;
    try {
      const tokens = await client.authorizationCodeGrant(
        config,
        currentUrl,
        { pkceCodeVerifier: codeVerifier, expectedState },
        { resource: server.resource },
      );
      return this.credential(tokens, server.resource);
    } catch (error) {
      throw upstreamError(error, 'authorization code exchange');
    }
  }

  /** Refresh grant with the `resource`; a rotated refresh token replaces the old one, an unrotated one is kept. */
  async refresh(server: McpOAuthServer, current: Credential): Promise<Credential> {
    if (!current.refreshToken)
      throw new AppError(
        'connection_needs_reauth',
        "The access token expired and the MCP server's authorization server gave no refresh token",
      );
    const config = await this.#config(server);
    try {
      const tokens = await client.refreshTokenGrant(config, current.refreshToken, { resource: server.resource });
      const next = this.credential(tokens, server.resource);
      return { ...next, refreshToken: next.refreshToken ?? current.refreshToken, scope: next.scope ?? current.scope };
    } catch (error) {
      throw upstreamError(error, 'token refresh');
    }
  }

  private credential(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, resource: string) {
    const expiresIn = tokens.expiresIn();
    const credential: Credential = {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      tokenType: tokens.token_type ?? 'bearer',
      expiresAt: expiresIn === undefined ? undefined : this.clock.now() + expiresIn * 1000,
      scope: tokens.scope,
      resource,
    };
    return credential;
  }
}

/** The authorization server's answer as a stable code: invalid_grant on refresh means the person connects again. */
function upstreamError(error: unknown, what: string): AppError {
  if (error instanceof AppError) return error;
  const oauthCode =
    error instanceof client.ResponseBodyError || error instanceof client.AuthorizationResponseError
      ? error.error
      : undefined;
  if (oauthCode === 'invalid_grant' && what === 'token refresh')
    return new AppError(
      'connection_needs_reauth',
      'The authorization server refused the refresh token (invalid_grant)',
    );
  // Only the OAuth error code and openid-client's own message (never a token) go into our error.
  const detail = oauthCode ?? (error instanceof Error ? error.message.slice(0, 200) : 'unknown');
  return new AppError('source_error', `The MCP server's authorization server failed the ${what}: ${detail}`, [], {
    cause: error,
  });
}
