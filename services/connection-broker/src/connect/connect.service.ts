import { randomBytes } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { personalServerRpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Connection } from '../connections/connections.repository.js';
import { ConnectionsService } from '../connections/connections.service.js';
import { isSameOrganization } from '../connections/usable-connection.js';
import type { Env } from '../env.js';
import { type Integration, IntegrationCatalog } from '../integrations/integration-catalog.js';
import { IntegrationResolver } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { ConnectCommitService } from './connect-commit.service.js';
import { CONNECT_METHODS, type ConnectMethods } from './connect-method.js';
import { type ConnectSession, ConnectSessionsRepository } from './connect-sessions.repository.js';
import { consentProof } from './consent-proof.js';
import { type FlowResult, refusal } from './flow-result.js';
import { sha256 } from './pkce-verifier-seal.js';

export interface CreateSessionInput {
  orgId: string;
  applicationId: string;
  applicationName: string;
  integration: string;
  scopes: string[];
  callbackUrl: string;
  appState: string;
  /** The one person who may consent (the app acted for them); undefined: whoever signs in. */
  forUserId?: string;
}

/** The application id of a person-started reconnect (no application is involved): the nil UUID. */
const PORTAL_APPLICATION_ID = '00000000-0000-0000-0000-000000000000';

/**
 * Connect flow, steps 1-3: an app's connect session, the person's consent, then — through
 * the integration's ConnectMethod — the source's authorization or a credential right away,
 * and the result: a connection, the app's grant, a Personal Server, a first sync, and the
 * app's callback. Whatever fails before the final transaction stores nothing but the
 * session's outcome.
 */
@Injectable()
export class ConnectService {
  constructor(
    private readonly sessions: ConnectSessionsRepository,
    private readonly connections: ConnectionsService,
    private readonly commit: ConnectCommitService,
    @Inject(CONNECT_METHODS) private readonly methods: ConnectMethods,
    private readonly catalog: IntegrationCatalog,
    private readonly integrations: IntegrationResolver,
    private readonly clock: Clock,
    private readonly rpc: RpcClient,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async create(input: CreateSessionInput): Promise<{ token: string; session: ConnectSession }> {
    const integration = await this.integrations.resolve(input.orgId, input.integration);
    this.methods[integration.authType].assertConfigured(integration);
    const scopes = this.catalog.checkScopes(integration, input.scopes);
    const token = randomBytes(32).toString('base64url');
    const session = await this.sessions.create({
      ...input,
      forUserId: input.forUserId ?? null,
      scopes,
      tokenHash: sha256(token),
      consentNonce: randomBytes(16).toString('base64url'),
      expiresAt: new Date(this.clock.now() + this.env.CONNECT_SESSION_TTL_SECONDS * 1000),
    });
    this.logger.info(
      { connectSession: session.id, applicationId: input.applicationId, integration: integration.key },
      'connect session created',
    );
    return { token, session };
  }

  /**
   * The person signs in to the source again for a connection of theirs (the portal's
   * Reconnect, for `needs_reauth` above all): a session of its own, bound to that person and
   * that connection, straight on to the source. Its callback renews the credential (the
   * sources' scopes the connection carries, no more), changes no grant, and sends the browser
   * back to the portal. Only OAuth sources: an API-key source is connected again with a new key.
   */
  async startReconnect(userId: string, connectionId: string): Promise<FlowResult> {
    const connection = await this.connections.findOwned(userId, connectionId);
    if (!connection) throw new AppError('connection_not_found');
    const integration = await this.integrations.resolve(connection.orgId, connection.integration);
    if (integration.authType !== 'oauth2')
      throw new AppError('validation_failed', `${integration.displayName} is not connected by signing in to it`, [
        { path: 'connectionId', message: 'not an OAuth connection' },
      ]);
    this.methods.oauth2.assertConfigured(integration);
    const session = await this.sessions.create({
      orgId: connection.orgId,
      applicationId: PORTAL_APPLICATION_ID,
      applicationName: 'Context Gateway',
      integration: integration.key,
      scopes: [],
      callbackUrl: new URL('/account/reconnected', this.env.GATEWAY_PUBLIC_URL).href,
      appState: '',
      forUserId: userId,
      consentNonce: null,
      reconnectConnectionId: connection.id,
      tokenHash: sha256(randomBytes(32).toString('base64url')),
      expiresAt: new Date(this.clock.now() + this.env.CONNECT_SESSION_TTL_SECONDS * 1000),
    });
    const consent = await this.methods.oauth2.consent({
      session,
      integration,
      userId,
      apiKey: '',
      current: connection,
      consentAssertion: '',
    });
    if (consent.next !== 'redirect') throw new AppError('internal', 'An OAuth reconnect must go to the source');
    this.logger.info({ connectSession: session.id, connectionId }, 'reconnect started by the person');
    return consent.result;
  }

  /** A pending, unexpired session (what the consent page may show and act on). */
  async pending(token: string): Promise<ConnectSession> {
    const session = await this.sessions.findByTokenHash(sha256(token));
    if (!session || session.status !== 'pending')
      throw new AppError('connect_session_invalid', 'This connect link is unknown or was already used');
    if (session.expiresAt.getTime() <= this.clock.now())
      throw new AppError('connect_session_expired', 'This connect link has expired; ask the app for a new one');
    return session;
  }

  /** The user's existing connection covers the session's source scopes: no second source login needed. */
  async reusable(session: ConnectSession, userId: string | undefined): Promise<Connection | null> {
    if (!userId) return null;
    const integration = await this.integrations.resolve(session.orgId, session.integration);
    return this.reusableConnection(
      session,
      integration,
      await this.connections.findByUser(userId, session.integration),
    );
  }

  private reusableConnection(
    session: ConnectSession,
    integration: Integration,
    connection: Connection | null,
  ): Connection | null {
    if (
      !connection ||
      connection.status !== 'active' ||
      connection.deletedAt ||
      !connection.dataKeyId ||
      connection.orgId !== session.orgId
    )
      return null;
    const needed = this.catalog.sourceScopes(integration, session.scopes);
    return needed.every((s) => connection.sourceScopes.includes(s)) ? connection : null;
  }

  async describe(session: ConnectSession) {
    const integration = await this.integrations.resolve(session.orgId, session.integration);
    return { integration, scopes: this.catalog.describe(integration, session.scopes) };
  }

  /**
   * A link made for one person is theirs alone: anyone else is refused and the link stays
   * usable, so a forwarded or leaked link neither connects a stranger's account to the app
   * in the person's name nor lets a stranger spend it.
   */
  private assertForPerson(session: ConnectSession, userId: string | undefined): void {
    if (session.forUserId && session.forUserId !== userId) {
      throw new AppError(
        'connect_session_other_person',
        'This connect link was made for another person: sign in as the person the app asked for',
      );
    }
  }

  /** `userId`: the signed-in person, if any (a link made for one person needs them). */
  async deny(token: string, userId?: string): Promise<FlowResult> {
    const session = await this.pending(token);
    this.assertForPerson(session, userId);
    if (!(await this.sessions.finish(session.id, { from: 'pending', to: 'failed', now: this.clock.date() })))
      throw new AppError('connect_session_invalid');
    this.logger.info({ connectSession: session.id }, 'consent denied');
    return refusal(session, 'access_denied');
  }

  /**
   * The person allows. Their passkey's assertion over this session's consent is checked by
   * their Personal Server first (provisioned, and their passkeys pinned, on their first
   * consent): no signature, or one it does not accept, and nothing happens. That signature
   * is also the fresh passkey use allowing needs; a live session alone does not allow.
   */
  async allow(token: string, userId: string, apiKey: string, consentAssertion: string): Promise<FlowResult> {
    const session = await this.pending(token);
    this.assertForPerson(session, userId);
    // Made before consents were signed (in flight across the upgrade), or a reconnect: nothing to sign.
    if (!session.consentNonce || session.reconnectConnectionId)
      throw new AppError(
        'connect_session_invalid',
        'This connect link is too old to be allowed; ask the app for a new one',
      );
    if (!consentAssertion)
      throw new AppError('passkey_signature_invalid', 'Allowing needs the signature of your passkey');
    await this.rpc.request(personalServerRpc.checkConsent, {
      userId,
      orgId: session.orgId,
      applicationId: session.applicationId,
      integration: session.integration,
      scopes: session.scopes,
      consent: consentProof(session, userId, consentAssertion),
    });
    const integration = await this.integrations.resolve(session.orgId, session.integration);
    const current = await this.connections.findByUser(userId, integration.key);
    const reusable = this.reusableConnection(session, integration, current);
    if (reusable)
      return this.commit.commit(session, 'pending', userId, integration, { reuse: reusable }, consentAssertion);
    // Said now, before the person logs in at the source for nothing; the commit checks it again, against races.
    // The person reads why on the consent page; the app gets error=conflict, as for a denial.
    if (!isSameOrganization(current, session.orgId)) {
      if (!(await this.sessions.finish(session.id, { from: 'pending', to: 'failed', now: this.clock.date() })))
        throw new AppError('connect_session_invalid');
      this.logger.info(
        { connectSession: session.id },
        'consent refused: account connected through another organization',
      );
      return refusal(session, 'conflict');
    }
    const consent = await this.methods[integration.authType].consent({
      session,
      integration,
      userId,
      apiKey,
      current,
      consentAssertion,
    });
    if (consent.next === 'redirect') return consent.result;
    return this.commit.commit(session, 'pending', userId, integration, consent, consentAssertion);
  }
}
