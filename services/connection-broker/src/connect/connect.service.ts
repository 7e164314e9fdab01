import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { type Connection, ConnectionsRepository } from '../connections/connections.repository.js';
import { owner } from '../connections/connections.service.js';
import { BROKER_DB, type BrokerDb, type Tx } from '../database/database.module.js';
import type { Env } from '../env.js';
import { GrantEventsRelay } from '../grants/grant-events.relay.js';
import { GrantFollowers } from '../grants/grant-followers.service.js';
import { type Grant, GrantsRepository } from '../grants/grants.repository.js';
import { type Integration, IntegrationCatalog } from '../integrations/integration-catalog.js';
import { SourceOAuthClient } from '../oauth/source-oauth.client.js';
import { type Credential, CredentialVault } from '../vault/credential-vault.js';
import { type ConnectSession, ConnectSessionsRepository } from './connect-sessions.repository.js';
import { openVerifier, sealVerifier, sha256 } from './pkce-verifier-seal.js';

export interface CreateSessionInput {
  orgId: string;
  applicationId: string;
  applicationName: string;
  integration: string;
  scopes: string[];
  callbackUrl: string;
  appState: string;
}

export interface FlowResult {
  redirectUrl: string;
  sessionId: string;
  connectionId?: string;
  grantId?: string;
  oauthState?: string;
  orgId?: string;
  applicationId?: string;
}

/**
 * Connect flow, steps 1-3: an app's connect session, the person's consent, the source's
 * authorization (code + PKCE S256 + state bound to the browser), and the result: a
 * connection, the app's grant, a Personal Server, a first sync, and the app's callback.
 * Whatever fails before the final transaction stores nothing but the session's outcome.
 */
@Injectable()
export class ConnectService {
  constructor(
    @Inject(BROKER_DB) private readonly db: BrokerDb,
    private readonly sessions: ConnectSessionsRepository,
    private readonly connections: ConnectionsRepository,
    private readonly grants: GrantsRepository,
    private readonly followers: GrantFollowers,
    private readonly relay: GrantEventsRelay,
    private readonly catalog: IntegrationCatalog,
    private readonly oauth: SourceOAuthClient,
    private readonly vault: CredentialVault,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async create(input: CreateSessionInput): Promise<{ token: string; session: ConnectSession }> {
    const integration = this.catalog.get(input.integration);
    if (integration.authType === 'oauth2' && !integration.oauth?.clientId) {
      throw new AppError(
        'integration_not_allowed',
        `${integration.key} has no OAuth client configured on this gateway`,
      );
    }
    const scopes = this.catalog.checkScopes(integration, input.scopes);
    const token = randomBytes(32).toString('base64url');
    const session = await this.sessions.create({
      ...input,
      scopes,
      tokenHash: sha256(token),
      expiresAt: new Date(Date.now() + this.env.CONNECT_SESSION_TTL_SECONDS * 1000),
    });
    this.logger.info(
      { connectSession: session.id, applicationId: input.applicationId, integration: integration.key },
      'connect session created',
    );
    return { token, session };
  }

  /** A pending, unexpired session (what the consent page may show and act on). */
  async pending(token: string): Promise<ConnectSession> {
    const session = await this.sessions.findByTokenHash(sha256(token));
    if (!session || session.status !== 'pending')
      throw new AppError('connect_session_invalid', 'This connect link is unknown or was already used');
    if (session.expiresAt.getTime() <= Date.now())
      throw new AppError('connect_session_expired', 'This connect link has expired; ask the app for a new one');
    return session;
  }

  /** The user's existing connection covers the session's source scopes: no second source login needed. */
  async reusable(session: ConnectSession, userId: string | undefined): Promise<Connection | null> {
    if (!userId) return null;
    return this.reusableConnection(session, await this.connections.findByUser(userId, session.integration));
  }

  private reusableConnection(session: ConnectSession, connection: Connection | null): Connection | null {
    if (
      !connection ||
      connection.status !== 'active' ||
      connection.deletedAt ||
      !connection.wrappedDataKey ||
      connection.orgId !== session.orgId
    )
      return null;
    const needed = this.catalog.sourceScopes(this.catalog.get(session.integration), session.scopes);
    return needed.every((s) => connection.sourceScopes.includes(s)) ? connection : null;
  }

  describe(session: ConnectSession) {
    const integration = this.catalog.get(session.integration);
    return { integration, scopes: this.catalog.describe(integration, session.scopes) };
  }

  async deny(token: string): Promise<FlowResult> {
    const session = await this.pending(token);
    if (!(await this.sessions.finish(this.db, session.id, 'pending', 'failed', new Date())))
      throw new AppError('connect_session_invalid');
    this.logger.info({ connectSession: session.id }, 'consent denied');
    return {
      redirectUrl: appCallback(session, { error: 'access_denied' }),
      sessionId: session.id,
      orgId: session.orgId,
      applicationId: session.applicationId,
    };
  }

  async allow(token: string, userId: string, apiKey: string): Promise<FlowResult> {
    const session = await this.pending(token);
    const integration = this.catalog.get(session.integration);
    const current = await this.connections.findByUser(userId, integration.key);
    const reusable = this.reusableConnection(session, current);
    if (reusable) return this.finishWithConnection(session, 'pending', userId, integration, { reuse: reusable });
    // Said now, before the person logs in at the source for nothing; the commit checks it again, against races.
    assertSameOrganization(current, session);
    if (integration.authType === 'api_key') {
      if (!integration.apiKey?.pattern.test(apiKey)) {
        throw new AppError('validation_failed', `That does not look like a ${integration.displayName} API key`, [
          { path: 'apiKey', message: 'invalid format' },
        ]);
      }
      const credential: Credential = { accessToken: apiKey, tokenType: 'api_key' };
      return this.finishWithConnection(session, 'pending', userId, integration, {
        credential,
        sourceScopes: this.catalog.sourceScopes(integration, session.scopes),
      });
    }
    if (integration.authType === 'file_export') {
      // No source login and no secret: the data arrives as uploads. The connection still gets a
      // data key and an (empty) sealed credential set, so every invariant elsewhere holds as is:
      // "usable" means key + ciphertext present, deletion shreds the key, reuse checks the key.
      const credential: Credential = { accessToken: '', tokenType: 'none' };
      return this.finishWithConnection(session, 'pending', userId, integration, {
        credential,
        sourceScopes: this.catalog.sourceScopes(integration, session.scopes),
      });
    }
    // Re-authorizing an existing connection asks for what it already carries too, so other apps' grants keep working.
    const carried = current && !current.deletedAt ? current.sourceScopes : [];
    const sourceScopes = [...new Set([...carried, ...this.catalog.sourceScopes(integration, session.scopes)])].sort();
    const request = await this.oauth.authorizationRequest(integration, sourceScopes);
    const moved = await this.sessions.startAuthorizing(
      session.id,
      userId,
      sha256(request.state),
      sealVerifier(request.codeVerifier, request.state, session.id),
      new Date(),
    );
    if (!moved) throw new AppError('connect_session_invalid');
    this.logger.info(
      { connectSession: session.id, integration: integration.key },
      'consent given; sending the browser to the source',
    );
    return { redirectUrl: request.url, oauthState: request.state, sessionId: session.id };
  }

  /** The source sent the browser back. Every check happens before anything but the session's outcome is stored. */
  async complete(callbackQuery: string, stateCookie: string, userId: string): Promise<FlowResult> {
    const params = new URLSearchParams(callbackQuery);
    const state = params.get('state') ?? '';
    const session = state ? await this.sessions.findByStateHash(sha256(state)) : null;
    if (!session || session.status !== 'authorizing')
      throw new AppError('oauth_state_invalid', 'Unknown or already used state');
    // Claim it first: a replayed callback (or a racing one) finds the state gone.
    if (!(await this.sessions.claimState(session.id, sha256(state))))
      throw new AppError('oauth_state_invalid', 'Unknown or already used state');
    const fail = async (code: string, why: string, error?: AppError): Promise<never> => {
      await this.sessions.finish(this.db, session.id, 'authorizing', 'failed', new Date());
      this.logger.warn({ connectSession: session.id, why }, 'connect flow failed');
      throw error ?? new AppError('oauth_state_invalid', code);
    };
    if (!sameSecret(stateCookie, state)) return fail('The state is not bound to this browser', 'state cookie mismatch');
    if (!userId || userId !== session.userId)
      return fail('Signed in as someone else than who allowed', 'user mismatch');
    if (session.expiresAt.getTime() <= Date.now())
      return fail('expired', 'session expired', new AppError('connect_session_expired'));

    const integration = this.catalog.get(session.integration);
    const sourceError = params.get('error');
    if (sourceError) {
      await this.sessions.finish(this.db, session.id, 'authorizing', 'failed', new Date());
      this.logger.info(
        { connectSession: session.id, sourceError: sourceError.slice(0, 40) },
        'the source refused the authorization',
      );
      const error = sourceError === 'access_denied' ? 'access_denied' : 'source_error';
      return {
        redirectUrl: appCallback(session, { error }),
        sessionId: session.id,
        orgId: session.orgId,
        applicationId: session.applicationId,
      };
    }
    const verifier = openVerifier(session.codeVerifierCiphertext ?? new Uint8Array(), state, session.id);
    let credential: Credential;
    try {
      credential = await this.oauth.exchange(integration, callbackQuery, state, verifier);
    } catch (error) {
      await this.sessions.finish(this.db, session.id, 'authorizing', 'failed', new Date());
      this.logger.warn(
        {
          connectSession: session.id,
          code: error instanceof AppError ? error.code : 'internal',
          reason: error instanceof Error ? error.message.slice(0, 200) : '',
        },
        'code exchange failed',
      );
      return {
        redirectUrl: appCallback(session, { error: 'source_error' }),
        sessionId: session.id,
        orgId: session.orgId,
        applicationId: session.applicationId,
      };
    }
    // Stored as a set, sorted: the source may repeat a scope or list them in any order.
    const granted = credential.scope
      ? [...new Set(credential.scope.split(/[\s,]+/).filter(Boolean))].sort()
      : this.catalog.sourceScopes(integration, session.scopes);
    return this.finishWithConnection(session, 'authorizing', userId, integration, {
      credential,
      sourceScopes: granted,
    });
  }

  /** The final transaction: connection (new, reconnected or reused), the app's grant, the session consumed. Then what follows. */
  private async finishWithConnection(
    session: ConnectSession,
    from: 'pending' | 'authorizing',
    userId: string,
    integration: Integration,
    source: { reuse: Connection } | { credential: Credential; sourceScopes: string[] },
  ): Promise<FlowResult> {
    let replacedKey: { connection: Connection } | undefined;
    const { connection, grant, fresh, eventId } = await this.db.$transaction(async (tx) => {
      if (!(await this.sessions.finish(tx, session.id, from, 'completed', new Date(), { userId })))
        throw new AppError('connect_session_invalid');
      let connection: Connection;
      let fresh = false;
      if ('reuse' in source) {
        connection = source.reuse;
      } else {
        const existing = await this.connections.findByUser(userId, integration.key, tx);
        assertSameOrganization(existing, session);
        connection = existing
          ? await this.reconnect(tx, existing, source.credential, source.sourceScopes)
          : await this.createConnection(tx, session, userId, integration, source.credential, source.sourceScopes);
        if (existing) replacedKey = { connection: existing };
        fresh = true;
      }
      await this.sessions.setConnection(tx, session.id, connection.id);
      const grant: Grant = await this.grants.upsert(tx, {
        orgId: session.orgId,
        applicationId: session.applicationId,
        userId,
        connectionId: connection.id,
        scopes: session.scopes,
      });
      const eventId = await this.relay.record(tx, grant, integration.key);
      return { connection, grant, fresh, eventId };
    });
    if (replacedKey?.connection.wrappedDataKey)
      this.vault.shred(owner(replacedKey.connection), replacedKey.connection.wrappedDataKey);
    this.logger.info(
      { connectSession: session.id, connectionId: connection.id, grantId: grant.id, reused: !fresh },
      'connection and grant recorded',
    );
    await this.followers.granted(grant, integration.key, eventId);
    if (fresh) await this.followers.queueInitialSync(connection.id);
    return {
      redirectUrl: appCallback(session, { connectionId: connection.id }),
      sessionId: session.id,
      connectionId: connection.id,
      grantId: grant.id,
      orgId: session.orgId,
      applicationId: session.applicationId,
    };
  }

  private async createConnection(
    tx: Tx,
    session: ConnectSession,
    userId: string,
    integration: Integration,
    credential: Credential,
    sourceScopes: string[],
  ): Promise<Connection> {
    const id = randomUUID();
    const sealed = await this.vault.sealNew({ orgId: session.orgId, userId, connectionId: id }, credential);
    return this.connections.create(tx, {
      id,
      orgId: session.orgId,
      userId,
      integration: integration.key,
      authType: integration.authType,
      sourceScopes,
      wrappedDataKey: sealed.wrappedDataKey,
      credentialCiphertext: sealed.ciphertext,
      accessExpiresAt: credential.expiresAt ? new Date(credential.expiresAt) : null,
    });
  }

  private async reconnect(
    tx: Tx,
    existing: Connection,
    credential: Credential,
    sourceScopes: string[],
  ): Promise<Connection> {
    const sealed = await this.vault.sealNew(owner(existing), credential);
    return this.connections.replaceCredential(tx, existing.id, {
      sourceScopes,
      wrappedDataKey: sealed.wrappedDataKey,
      credentialCiphertext: sealed.ciphertext,
      accessExpiresAt: credential.expiresAt ? new Date(credential.expiresAt) : null,
    });
  }
}

/** The app's exact registered callback URL, plus our parameters and the app's state. */
function appCallback(
  session: Pick<ConnectSession, 'callbackUrl' | 'appState'>,
  params: Record<string, string>,
): string {
  const url = new URL(session.callbackUrl);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  if (session.appState) url.searchParams.set('state', session.appState);
  return url.href;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/**
 * One account at a source connects through one organization: its connection row (deleted
 * or not — the row stays, keyed by user and integration) belongs to the org that made it.
 */
function assertSameOrganization(connection: Connection | null, session: ConnectSession): void {
  if (connection && connection.orgId !== session.orgId)
    throw new AppError('conflict', 'This account is connected through another organization');
}
