import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type CompleteAuthorizationRequest,
  ConnectDecision,
  type CreateConnectSessionRequest,
  type DecideConnectSessionRequest,
  type GetConnectSessionRequest,
  rpc,
  type StartReconnectRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { PersonSessions } from '../people/person-sessions.js';
import { ConnectService } from './connect.service.js';
import { consentChallenge } from './consent-proof.js';
import { OAuth2ConnectMethod } from './oauth2.connect-method.js';

@Controller()
export class ConnectHandler {
  constructor(
    private readonly connect: ConnectService,
    private readonly oauth2: OAuth2ConnectMethod,
    private readonly people: PersonSessions,
  ) {}

  @RpcHandler(rpc.broker.createConnectSession)
  async create(@Payload() m: CreateConnectSessionRequest) {
    const { token, session } = await this.connect.create({
      orgId: m.orgId,
      applicationId: m.applicationId,
      applicationName: m.applicationName,
      integration: m.integration,
      scopes: m.scopes,
      callbackUrl: m.callbackUrl,
      appState: m.appState,
      forUserId: m.forUserId || undefined,
    });
    return { sessionToken: token, sessionId: session.id, expiresAt: timestampFromDate(session.expiresAt) };
  }

  @RpcHandler(rpc.broker.getConnectSession)
  async get(@Payload() m: GetConnectSessionRequest) {
    const session = await this.connect.pending(m.sessionToken);
    const { integration, scopes } = await this.connect.describe(session);
    const userId = await this.people.optionalUserId(m.personSessionToken);
    return {
      sessionId: session.id,
      applicationName: session.applicationName,
      integration: integration.key,
      integrationName: integration.displayName,
      scopes,
      expiresAt: timestampFromDate(session.expiresAt),
      authType: integration.authType,
      reusesConnection: Boolean(await this.connect.reusable(session, userId)),
      orgId: session.orgId,
      applicationId: session.applicationId,
      consentChallenge: userId && session.consentNonce ? consentChallenge(session, userId) : '',
    };
  }

  @RpcHandler(rpc.broker.decideConnectSession)
  async decide(@Payload() m: DecideConnectSessionRequest) {
    if (m.decision === ConnectDecision.DENY)
      return this.connect.deny(m.sessionToken, await this.people.optionalUserId(m.personSessionToken));
    // The person's signed consent is the fresh passkey use that allowing needs (ConnectService.allow).
    if (m.decision === ConnectDecision.ALLOW)
      return this.connect.allow(
        m.sessionToken,
        await this.people.userId(m.personSessionToken),
        m.apiKey,
        m.consentAssertionJson,
      );
    throw new AppError('validation_failed', 'decision must be set');
  }

  @RpcHandler(rpc.broker.startReconnect)
  async startReconnect(@Payload() m: StartReconnectRequest) {
    // It renews the credential that feeds the person's data to every app they allowed: a recent
    // passkey use, as for deleting the connection. (The source's account is not compared: the
    // connection does not record which account it was; the reconnect page asks for the same one.)
    const result = await this.connect.startReconnect(
      await this.people.recentUserId(m.personSessionToken),
      m.connectionId,
    );
    return { redirectUrl: result.redirectUrl, oauthState: result.oauthState ?? '' };
  }

  // Only OAuth sends the browser away and back: the callback is that method's own step.
  @RpcHandler(rpc.broker.completeAuthorization)
  async complete(@Payload() m: CompleteAuthorizationRequest) {
    // No person (or a session that ended) fails the flow like someone else would: the state is spent.
    const userId = await this.people.optionalUserId(m.personSessionToken);
    return this.oauth2.complete(m.callbackQuery, m.stateCookie, userId ?? '', m.redirectKey);
  }
}
