import type { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import * as client from 'openid-client';

import type { Integration, OAuthEndpoints } from '../integrations/integration-catalog.js';
import type { Credential } from '../vault/credential-vault.js';

export interface SourceOAuthOptions {
  /** Where the source sends the browser back: <gateway>/v1/connect/callback. */
  redirectUri: string;
  /** http:// endpoints allowed (simulators); never in production. */
  allowInsecureHttp: boolean;
  timeoutMs: number;
}

/**
 * OAuth 2.0 with the sources through openid-client: authorization code + PKCE S256, state and
 * RFC 9207 issuer checks, refresh, revocation. The Configuration is built from the catalog's
 * endpoints (GitHub and Spotify publish no discovery document).
 */
export class SourceOAuthClient {
  readonly #configs = new Map<string, client.Configuration>();

  constructor(
    private readonly options: SourceOAuthOptions,
    /** Turns the source's `expires_in` into the instant stored with the credential (refresh decisions compare it). */
    private readonly clock: Clock,
  ) {}

  #config(integration: Integration): { config: client.Configuration; oauth: OAuthEndpoints } {
    const oauth = integration.oauth;
    if (!oauth?.clientId)
      throw new AppError('integration_not_allowed', `${integration.key} is not configured with an OAuth client`);
    let config = this.#configs.get(integration.key);
    if (!config) {
      const server: client.ServerMetadata = {
        // The issuer a response's `iss` must equal; sources without one (GitHub) never send `iss`.
        issuer: oauth.issuer ?? new URL(oauth.authorizationUrl).origin,
        authorization_endpoint: oauth.authorizationUrl,
        token_endpoint: oauth.tokenUrl,
        ...(oauth.issuer ? { authorization_response_iss_parameter_supported: true } : {}),
        ...(oauth.revocation?.style === 'rfc7009' ? { revocation_endpoint: oauth.revocation.url } : {}),
        code_challenge_methods_supported: ['S256'],
      };
      const auth = oauth.clientSecret ? client.ClientSecretPost(oauth.clientSecret) : client.None();
      config = new client.Configuration(server, oauth.clientId, { redirect_uris: [this.options.redirectUri] }, auth);
      config.timeout = Math.ceil(this.options.timeoutMs / 1000);
      if (this.options.allowInsecureHttp) client.allowInsecureRequests(config);
      this.#configs.set(integration.key, config);
    }
    return { config, oauth };
  }

  /** A fresh state and PKCE verifier, and the source's authorization URL carrying them. */
  async authorizationRequest(
    integration: Integration,
    sourceScopes: string[],
  ): Promise<{ url: string; state: string; codeVerifier: string }> {
    const { config, oauth } = this.#config(integration);
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.options.redirectUri,
      scope: sourceScopes.join(oauth.scopeSeparator),
      state,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, state, codeVerifier };
  }

  /** Validates the callback (state, iss, error) and exchanges the code with the verifier. */
  async exchange(
    integration: Integration,
    callbackQuery: string,
    expectedState: string,
    codeVerifier: string,
  ): Promise<Credential> {
    const { config } = this.#config(integration);
    const currentUrl = new URL(this.options.redirectUri);
    currentUrl.search = callbackQuery;
    try {
      const tokens = await client.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: codeVerifier,
        expectedState,
      });
      return toCredential(tokens, this.clock.now());
    } catch (error) {
      throw sourceError(error, 'authorization code exchange');
    }
  }

  /** Refresh grant. A rotated refresh token replaces the old one; an unrotated one is kept. */
  async refresh(integration: Integration, current: Credential): Promise<Credential> {
    const { config } = this.#config(integration);
    if (!current.refreshToken)
      throw new AppError('connection_needs_reauth', 'The access token expired and the source gave no refresh token');
    try {
      const tokens = await client.refreshTokenGrant(config, current.refreshToken);
      const next = toCredential(tokens, this.clock.now());
      return { ...next, refreshToken: next.refreshToken ?? current.refreshToken, scope: next.scope ?? current.scope };
    } catch (error) {
      throw sourceError(error, 'token refresh');
    }
  }

  /** Revokes at the source; false when the source has no revocation or refused. Never throws. */
  async revoke(integration: Integration, credential: Credential): Promise<boolean> {
    const oauth = integration.oauth;
    if (!oauth?.revocation || !oauth.clientId) return false;
    try {
      if (oauth.revocation.style === 'rfc7009') {
        const { config } = this.#config(integration);
        await client.tokenRevocation(config, credential.refreshToken ?? credential.accessToken);
        return true;
      }
      // GitHub: DELETE /applications/{client_id}/grant with Basic client auth revokes the whole grant.
      const url = oauth.revocation.url.replace('{client_id}', encodeURIComponent(oauth.clientId));
      const response = await fetch(url, {
        method: 'DELETE',
        headers: {
          authorization: `Basic ${Buffer.from(`${oauth.clientId}:${oauth.clientSecret ?? ''}`).toString('base64')}`,
          accept: 'application/vnd.github+json',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ access_token: credential.accessToken }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      return response.status === 204 || response.ok;
    } catch {
      return false;
    }
  }
}

function toCredential(
  tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  now: number,
): Credential {
  const expiresIn = tokens.expiresIn();
  return {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    tokenType: tokens.token_type ?? 'bearer',
    expiresAt: expiresIn === undefined ? undefined : now + expiresIn * 1000,
    scope: tokens.scope,
  };
}

/** The source's answer as a stable code: invalid_grant means the user must connect again. */
function sourceError(error: unknown, what: string): AppError {
  if (error instanceof AppError) return error;
  const oauthCode =
    error instanceof client.ResponseBodyError || error instanceof client.AuthorizationResponseError
      ? error.error
      : undefined;
  if (oauthCode === 'invalid_grant' && what === 'token refresh') {
    return new AppError('connection_needs_reauth', 'The source refused the refresh token (invalid_grant)');
  }
  // Only the OAuth error code and openid-client's own message (never a token) go into our error.
  const detail = oauthCode ?? (error instanceof Error ? error.message.slice(0, 200) : 'unknown');
  return new AppError('source_error', `The source failed the ${what}: ${detail}`, [], { cause: error });
}
