import { timingSafeEqual } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { type Integration, IntegrationCatalog } from '../integrations/integration-catalog.js';
import { McpOAuthClient, needsIssOnCallback, registrationBinding } from '../mcp-oauth/mcp-oauth.client.js';
import { IntegrationResolver } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import type { Credential } from '../vault/credential-vault.js';
import { ConnectCommitService } from './connect-commit.service.js';
import type { ConnectMethod, Consent, ConsentInput } from './connect-method.js';
import { ConnectSessionsRepository } from './connect-sessions.repository.js';
import { type FlowResult, refusal } from './flow-result.js';
import { openVerifier, sealVerifier, sha256 } from './pkce-verifier-seal.js';

/**
 * oauth2: after consent the browser goes to the source (code + PKCE S256 + a state bound to
 * the browser by a cookie) and comes back to `complete`. Every check happens before
 * anything but the session's outcome is stored.
 */
@Injectable()
export class OAuth2ConnectMethod implements ConnectMethod {
  constructor(
    private readonly sessions: ConnectSessionsRepository,
    private readonly commit: ConnectCommitService,
    private readonly catalog: IntegrationCatalog,
    private readonly oauth: SourceOAuthClient,
    private readonly mcpOAuth: McpOAuthClient,
    private readonly integrations: IntegrationResolver,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  assertConfigured(integration: Integration): void {
    if (!integration.oauth?.clientId) {
      throw new AppError(
        'integration_not_allowed',
        `${integration.key} has no OAuth client configured on this gateway`,
      );
    }
  }

  async consent({ session, integration, userId, current, consentAssertion }: ConsentInput): Promise<Consent> {
    // Re-authorizing an existing connection asks for what it already carries too, so other apps' grants keep working.
    const carried = current && !current.deletedAt ? current.sourceScopes : [];
    const sourceScopes = [...new Set([...carried, ...this.catalog.sourceScopes(integration, session.scopes)])].sort();
    // An MCP server's own authorization server is asked for a token for that server (`resource`).
    const request = integration.mcp
      ? await this.mcpOAuth.authorizationRequest(integration.mcp, sourceScopes)
      : await this.oauth.authorizationRequest(integration, sourceScopes);
    const moved = await this.sessions.startAuthorizing(
      session.id,
      userId,
      sha256(request.state),
      sealVerifier(request.codeVerifier, request.state, verifierBinding(session.id, integration)),
      consentAssertion,
      this.clock.date(),
    );
    if (!moved) throw new AppError('connect_session_invalid');
    this.logger.info(
      { connectSession: session.id, integration: integration.key },
      'consent given; sending the browser to the source',
    );
    return { next: 'redirect', result: { redirectUrl: request.url, oauthState: request.state, sessionId: session.id } };
  }

  /**
   * The source sent the browser back, on `redirectKey`'s redirect URI (empty: the shared one).
   * Every check happens before anything but the session's outcome is stored.
   */
  async complete(callbackQuery: string, stateCookie: string, userId: string, redirectKey = ''): Promise<FlowResult> {
    const params = new URLSearchParams(callbackQuery);
    const state = params.get('state') ?? '';
    const session = state ? await this.sessions.findByStateHash(sha256(state)) : null;
    if (!session || session.status !== 'authorizing')
      throw new AppError('oauth_state_invalid', 'Unknown or already used state');
    // Claim it first: a replayed callback (or a racing one) finds the state gone.
    if (!(await this.sessions.claimState(session.id, sha256(state))))
      throw new AppError('oauth_state_invalid', 'Unknown or already used state');
    const failed = () =>
      this.sessions.finish(session.id, { from: 'authorizing', to: 'failed', now: this.clock.date() });
    const fail = async (code: string, why: string, error?: AppError): Promise<never> => {
      await failed();
      this.logger.warn({ connectSession: session.id, why }, 'connect flow failed');
      throw error ?? new AppError('oauth_state_invalid', code);
    };
    if (!sameSecret(stateCookie, state)) return fail('The state is not bound to this browser', 'state cookie mismatch');
    if (!userId || userId !== session.userId)
      return fail('Signed in as someone else than who allowed', 'user mismatch');
    if (session.expiresAt.getTime() <= this.clock.now())
      return fail('expired', 'session expired', new AppError('connect_session_expired'));
    // Allowed before consents were signed (a session in flight across the upgrade): no grant
    // could be registered with the Personal Server, so the flow fails rather than hand the app
    // a connection it cannot read.
    if (!session.consentAssertion && !session.reconnectConnectionId)
      return fail('allowed without a signed consent', 'no signed consent', new AppError('connect_session_invalid'));

    const integration = await this.integrations.resolve(session.orgId, session.integration);
    // RFC 9700 §4.4.2: each MCP registration has its own redirect URI, so an answer arriving on
    // another one's (or on the shared one) came from an authorization server this session was
    // not sent to. Refused before anything reaches a token endpoint.
    if (redirectKey !== (integration.mcp?.registrationKey ?? ''))
      return fail(
        'redirect URI of another registration',
        'callback on another redirect URI than the session was sent with',
        new AppError(
          'upstream_auth_redirect_mismatch',
          'The authorization answer came back on the redirect URI of another authorization server: it is not used',
        ),
      );
    const sourceError = params.get('error');
    if (sourceError) {
      await failed();
      this.logger.info(
        { connectSession: session.id, sourceError: sourceError.slice(0, 40) },
        'the source refused the authorization',
      );
      return refusal(session, sourceError === 'access_denied' ? 'access_denied' : 'source_error');
    }
    if (integration.mcp && needsIssOnCallback(integration.mcp) && !params.get('iss'))
      // A registration from before per-registration redirect URIs shares the one URI with every
      // authorization server, and a public client has no secret telling them apart: without
      // RFC 9207's iss the code could come from another authorization server (a mix-up).
      return fail(
        'no iss',
        'callback without iss for a public client',
        new AppError(
          'upstream_auth_issuer_mismatch',
          "The MCP server's authorization server did not name itself (iss) in its answer: a public client cannot accept it",
        ),
      );
    let verifier: string;
    try {
      verifier = openVerifier(
        session.codeVerifierCiphertext ?? new Uint8Array(),
        state,
        verifierBinding(session.id, integration),
      );
    } catch (error) {
      if (!integration.mcp) throw error;
      // Bound to the registration at consent: the server was registered again since.
      return fail(
        'registration changed',
        'MCP server registration changed during the flow',
        new AppError(
          'upstream_auth_issuer_mismatch',
          "The MCP server's authorization registration changed while the person was connecting: connect again",
        ),
      );
    }
    let credential: Credential;
    try {
      credential = integration.mcp
        ? await this.mcpOAuth.exchange(integration.mcp, callbackQuery, state, verifier)
        : await this.oauth.exchange(integration, callbackQuery, state, verifier);
    } catch (error) {
      await failed();
      this.logger.warn(
        {
          connectSession: session.id,
          code: error instanceof AppError ? error.code : 'internal',
          reason: error instanceof Error ? error.message.slice(0, 200) : '',
        },
        'code exchange failed',
      );
      return refusal(session, 'source_error');
    }
    // Stored as a set, sorted: the source may repeat a scope or list them in any order.
    const granted = credential.scope
      ? [...new Set(credential.scope.split(/[\s,]+/).filter(Boolean))].sort()
      : this.catalog.sourceScopes(integration, session.scopes);
    if (session.reconnectConnectionId)
      return this.commit.reconnect(session, userId, integration, {
        credential,
        // What the source says it granted, when it says (RFC 6749 §5.1 lets it not).
        sourceScopes: credential.scope ? granted : undefined,
      });
    return this.commit.commit(
      session,
      'authorizing',
      userId,
      integration,
      { credential, sourceScopes: granted },
      session.consentAssertion ?? '',
    );
  }
}

/** What the PKCE verifier is sealed to: the session, and for an MCP server with its own OAuth its registration then. */
function verifierBinding(sessionId: string, integration: Integration): string {
  return integration.mcp ? `${sessionId}\u0000${registrationBinding(integration.mcp)}` : sessionId;
}

/** Constant-time comparison, so the cookie check leaks nothing about the state by timing. */
function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
