import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { ApplicationStatus, ConnectDecision, rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { SignedInPerson } from '../accounts/accounts.service.js';
import { AuditRecorder } from '../audit/audit-recorder.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { connectionJson } from './connection.schema.js';

/**
 * The gateway's half of the connect flow: it knows who is asking (the app by its API key,
 * the person by their passkey session) and what identity registered for the app; the broker
 * owns the sessions, the source OAuth and the vault. Every step is audited.
 */
@Injectable()
export class ConnectFlowService {
  constructor(
    private readonly rpc: RpcClient,
    private readonly audit: AuditRecorder,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Step 1: the app asks; its callback must be exactly one it registered, its integration and scopes among its allowed ones. */
  /**
   * Step 1. An application acting with a person's access token makes a link only that person
   * can consent on; `forUserId` does the same for a person the application names (the
   * connect link of `connection_required`).
   */
  async createSession(
    caller: ApplicationCaller,
    body: { integration: string; scopes: string[]; callbackUrl: string; state?: string },
    forUserId: string | undefined = caller.onBehalfOf,
  ) {
    const { application } = await this.rpc.request(rpc.identity.getApplication, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
    });
    if (!application || application.status !== ApplicationStatus.ACTIVE)
      throw new AppError('unauthenticated', 'This application is disabled');
    // Exact string comparison: no prefix, no normalization, no wildcard (RFC 9700 §4.1.3).
    if (!application.callbackUrls.includes(body.callbackUrl)) {
      throw new AppError(
        'callback_url_not_registered',
        "callbackUrl must be exactly one of the application's registered callback URLs",
        [{ path: 'callbackUrl', message: 'not registered' }],
      );
    }
    if (!application.integrations.includes(body.integration)) {
      throw new AppError('integration_not_allowed', `This application may not request ${body.integration}`, [
        { path: 'integration', message: 'not allowed for this application' },
      ]);
    }
    const notAllowed = body.scopes.filter((s) => !application.scopes.includes(s));
    if (notAllowed.length > 0) {
      throw new AppError(
        'scope_not_allowed',
        'This application may not request some of these scopes',
        notAllowed.map((s) => ({ path: 'scopes', message: `${s} is not allowed for this application` })),
      );
    }
    const created = await this.rpc.request(rpc.broker.createConnectSession, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      applicationName: application.name,
      integration: body.integration,
      scopes: body.scopes,
      callbackUrl: body.callbackUrl,
      appState: body.state ?? '',
      forUserId: forUserId ?? '',
    });
    await this.audit.record({
      action: 'connect_session',
      outcome: 'allowed',
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      integration: body.integration,
      resource: `connect_session:${created.sessionId}`,
      actorKind: caller.accessTokenId ? 'access_token' : 'api_key',
      actorId: caller.accessTokenId ?? caller.apiKeyId,
      operation: 'POST /v1/connect/sessions',
    });
    return {
      id: created.sessionId,
      connectUrl: new URL(`/v1/connect/${created.sessionToken}`, this.env.GATEWAY_PUBLIC_URL).href,
      expiresAt: created.expiresAt ? timestampDate(created.expiresAt).toISOString() : '',
    };
  }

  /**
   * A connect link for the person behind a `connection_required` answer: a connect session
   * for this application and integration, back to its first registered callback URL with
   * the scopes it may ask for there. Undefined when it registered neither (nothing to start).
   */
  async connectLinkFor(caller: ApplicationCaller, integration: string, userId: string): Promise<string | undefined> {
    const { application } = await this.rpc.request(rpc.identity.getApplication, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
    });
    const callbackUrl = application?.callbackUrls[0];
    const scopes = application?.scopes.filter((s) => s.startsWith(`${integration}:`)) ?? [];
    if (!callbackUrl || scopes.length === 0 || !application.integrations.includes(integration)) return undefined;
    const session = await this.createSession(caller, { integration, scopes, callbackUrl }, userId);
    return session.connectUrl;
  }

  /**
   * The passkeys the person's Personal Server trusts (credential ids), so the consent page
   * asks for one of those and the browser does not offer one that could not sign. Empty when
   * none is pinned yet (the first consent pins them) or the Personal Server did not answer:
   * then any of the person's passkeys may be offered, and the signature is checked anyway.
   */
  async trustedPasskeys(userId: string): Promise<string[]> {
    try {
      const pins = await this.rpc.request(rpc.personalServer.listPinnedPasskeys, { userId });
      return pins.pinned ? pins.credentialIds : [];
    } catch (error) {
      this.logger.warn({ errorCode: AppError.from(error).code }, 'the Personal Server did not list pinned passkeys');
      return [];
    }
  }

  /** What the consent page shows. */
  session(token: string, person: SignedInPerson | undefined) {
    return this.rpc.request(rpc.broker.getConnectSession, {
      sessionToken: token,
      personSessionToken: person?.sessionToken ?? '',
    });
  }

  /** Step 2: the person's Allow or Deny. */
  async decide(
    token: string,
    decision: 'allow' | 'deny',
    person: SignedInPerson | undefined,
    apiKey: string | undefined,
    consentAssertion: string | undefined,
  ) {
    const userId = person?.userId;
    const session = await this.session(token, person);
    // The consent is in the trail before the broker acts on it (a grant may follow at once):
    // if the trail cannot take it, nothing is decided.
    const intent = await this.audit.recordIntent({
      action: 'consent',
      orgId: session.orgId,
      applicationId: session.applicationId,
      userId,
      integration: session.integration,
      resource: `connect_session:${session.sessionId}`,
      actorKind: userId ? 'user_session' : 'anonymous',
      actorId: userId ?? '',
      operation: 'POST /v1/connect/{token}',
    });
    let result;
    try {
      result = await this.rpc.request(rpc.broker.decideConnectSession, {
        sessionToken: token,
        decision: decision === 'allow' ? ConnectDecision.ALLOW : ConnectDecision.DENY,
        personSessionToken: person?.sessionToken ?? '',
        apiKey: apiKey ?? '',
        consentAssertionJson: decision === 'allow' ? (consentAssertion ?? '') : '',
      });
    } catch (error) {
      await this.audit
        .recordOutcome(intent, { outcome: 'error', errorCode: AppError.from(error).code })
        .catch(() => undefined);
      throw error;
    }
    await this.audit.recordOutcome(
      intent,
      result.refused
        ? { outcome: 'error', errorCode: result.refused }
        : { outcome: decision === 'allow' ? 'allowed' : 'denied' },
    );
    if (result.refused)
      return { ...result, applicationName: session.applicationName, integrationName: session.integrationName };
    if (result.grantId)
      await this.auditGrant(
        session.orgId,
        session.applicationId,
        userId,
        session.integration,
        result.connectionId,
        result.grantId,
      );
    return result;
  }

  /** Step 3: back from the source. */
  async complete(callbackQuery: string, stateCookie: string, person: SignedInPerson | undefined, redirectKey: string) {
    const result = await this.rpc.request(rpc.broker.completeAuthorization, {
      callbackQuery,
      stateCookie,
      personSessionToken: person?.sessionToken ?? '',
      redirectKey,
    });
    if (result.grantId)
      await this.auditGrant(
        result.orgId,
        result.applicationId,
        person?.userId,
        '',
        result.connectionId,
        result.grantId,
      );
    else if (result.connectionId)
      // A person's reconnect from the portal: the credential renewed, no grant; in their access log.
      await this.audit.record({
        action: 'admin_change',
        outcome: 'allowed',
        orgId: result.orgId,
        userId: person?.userId,
        connectionId: result.connectionId,
        resource: `connection:${result.connectionId}`,
        actorKind: 'user_session',
        actorId: person?.userId,
        operation: 'reconnect',
      });
    return result;
  }

  async connection(caller: ApplicationCaller, connectionId: string) {
    const { connection } = await this.rpc.request(rpc.broker.getConnection, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      connectionId,
    });
    if (!connection) throw new AppError('connection_not_found');
    return connectionJson(connection);
  }

  private async auditGrant(
    orgId: string,
    applicationId: string,
    userId: string | undefined,
    integration: string,
    connectionId: string,
    grantId: string,
  ) {
    await this.audit.record({
      action: 'grant',
      outcome: 'allowed',
      orgId,
      applicationId,
      userId,
      integration: integration || undefined,
      connectionId,
      resource: `grant:${grantId}`,
      actorKind: 'user_session',
      actorId: userId,
      operation: 'connect flow',
    });
    this.logger.info({ connectionId, grantId, applicationId }, 'connect flow finished');
  }
}
