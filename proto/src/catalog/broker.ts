import {
  CompleteAuthorizationRequestSchema,
  CompleteAuthorizationResponseSchema,
  ConfigureWebhookRequestSchema,
  ConfigureWebhookResponseSchema,
  ConnectDecision,
  CreateConnectSessionRequestSchema,
  CreateConnectSessionResponseSchema,
  DecideConnectSessionRequestSchema,
  DecideConnectSessionResponseSchema,
  DeleteMcpOAuthServerRequestSchema,
  DeleteMcpOAuthServerResponseSchema,
  DeleteWebhookResponseSchema,
  FindUserGrantRequestSchema,
  FindUserGrantResponseSchema,
  GetAccessTokenRequestSchema,
  GetAccessTokenResponseSchema,
  GetConnectionRequestSchema,
  GetConnectionResponseSchema,
  GetConnectSessionRequestSchema,
  GetConnectSessionResponseSchema,
  GetWebhookResponseSchema,
  ListMcpOAuthServersRequestSchema,
  ListMcpOAuthServersResponseSchema,
  ListUserConnectionsRequestSchema,
  ListUserConnectionsResponseSchema,
  ListWebhookMessagesRequestSchema,
  ListWebhookMessagesResponseSchema,
  PutMcpOAuthServerRequestSchema,
  PutMcpOAuthServerResponseSchema,
  RemoveConnectionRequestSchema,
  RemoveConnectionResponseSchema,
  ReplayWebhookMessageRequestSchema,
  ReplayWebhookMessageResponseSchema,
  RevokeConnectionGrantRequestSchema,
  RevokeConnectionGrantResponseSchema,
  RotateWebhookSecretRequestSchema,
  RotateWebhookSecretResponseSchema,
  StartReconnectRequestSchema,
  StartReconnectResponseSchema,
  WebhookRefSchema,
} from '../gen/contextgateway/broker/v1/broker_pb.js';
import { defineRpc } from './descriptors.js';
import { check, type ValidationProblem } from './validation.js';

/** A connect session token: 32 random bytes, base64url (43 characters). */
function sessionToken(value: string, path: string): ValidationProblem[] {
  return /^[A-Za-z0-9_-]{43}$/.test(value) ? [] : [{ path, message: 'must be a connect session token' }];
}

function optionalUuid(value: string, path: string): ValidationProblem[] {
  return value === '' ? [] : check.uuid(value, path);
}

/**
 * A person's browser session token (identity's `cg_ss_...`), which the broker resolves with
 * identity.v1.resolve_session: the person a call acts for is proven, not named.
 */
function personSessionToken(value: string, path: string): ValidationProblem[] {
  return [...check.nonEmpty(value, path), ...check.maxLength(value, 512, path)];
}

function optionalPersonSessionToken(value: string, path: string): ValidationProblem[] {
  return value === '' ? [] : personSessionToken(value, path);
}

/** connection-broker's request/reply contracts (`broker.v1.*`). */
export const brokerRpc = {
  createConnectSession: defineRpc({
    subject: 'broker.v1.create_connect_session',
    callers: ['gateway'],
    request: CreateConnectSessionRequestSchema,
    response: CreateConnectSessionResponseSchema,
    // A database write on the control plane; generous so a cold or busy broker is not a 504.
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.applicationName, 'applicationName'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...(m.scopes.length === 0 ? [{ path: 'scopes', message: 'must not be empty' }] : []),
      ...check.nonEmpty(m.callbackUrl, 'callbackUrl'),
      ...check.maxLength(m.callbackUrl, 2048, 'callbackUrl'),
      ...check.maxLength(m.appState, 512, 'appState'),
      ...(m.forUserId === '' ? [] : check.uuid(m.forUserId, 'forUserId')),
    ],
  }),
  getConnectSession: defineRpc({
    subject: 'broker.v1.get_connect_session',
    callers: ['gateway'],
    request: GetConnectSessionRequestSchema,
    response: GetConnectSessionResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...sessionToken(m.sessionToken, 'sessionToken'),
      ...optionalPersonSessionToken(m.personSessionToken, 'personSessionToken'),
    ],
  }),
  decideConnectSession: defineRpc({
    subject: 'broker.v1.decide_connect_session',
    callers: ['gateway'],
    request: DecideConnectSessionRequestSchema,
    response: DecideConnectSessionResponseSchema,
    // Reuse and API-key paths store a connection and publish events before answering.
    timeoutMs: 10_000,
    validate: (m) => [
      ...sessionToken(m.sessionToken, 'sessionToken'),
      ...check.enumSet(m.decision, 'decision'),
      ...(m.decision === ConnectDecision.ALLOW
        ? personSessionToken(m.personSessionToken, 'personSessionToken')
        : optionalPersonSessionToken(m.personSessionToken, 'personSessionToken')),
      ...check.maxLength(m.apiKey, 4096, 'apiKey'),
      // Required for ALLOW, but its absence is the broker's passkey_signature_invalid (a page
      // the person understands), not a validation error.
      ...check.maxLength(m.consentAssertionJson, 16_384, 'consentAssertionJson'),
    ],
  }),
  /** The portal: the person signs in to the source again for a connection of theirs (no app, no grant). */
  startReconnect: defineRpc({
    subject: 'broker.v1.start_reconnect',
    callers: ['gateway'],
    request: StartReconnectRequestSchema,
    response: StartReconnectResponseSchema,
    validate: (m) => [
      ...personSessionToken(m.personSessionToken, 'personSessionToken'),
      ...check.uuid(m.connectionId, 'connectionId'),
    ],
  }),
  completeAuthorization: defineRpc({
    subject: 'broker.v1.complete_authorization',
    callers: ['gateway'],
    request: CompleteAuthorizationRequestSchema,
    response: CompleteAuthorizationResponseSchema,
    // Includes the code exchange with the source over the internet.
    timeoutMs: 20_000,
    validate: (m) => [
      ...check.nonEmpty(m.callbackQuery, 'callbackQuery'),
      ...check.maxLength(m.callbackQuery, 8192, 'callbackQuery'),
      ...optionalPersonSessionToken(m.personSessionToken, 'personSessionToken'),
      ...check.maxLength(m.redirectKey, 64, 'redirectKey'),
    ],
  }),
  getConnection: defineRpc({
    subject: 'broker.v1.get_connection',
    callers: ['gateway'],
    request: GetConnectionRequestSchema,
    response: GetConnectionResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.connectionId, 'connectionId'),
    ],
  }),
  getAccessToken: defineRpc({
    subject: 'broker.v1.get_access_token',
    // sync-worker for its sync runs; the gateway for credential-only mode (POST /v1/credentials).
    callers: ['sync-worker', 'gateway'],
    request: GetAccessTokenRequestSchema,
    response: GetAccessTokenResponseSchema,
    // May wait for a refresh at the source.
    timeoutMs: 15_000,
    validate: (m) => [...check.uuid(m.connectionId, 'connectionId')],
  }),
  findUserGrant: defineRpc({
    subject: 'broker.v1.find_user_grant',
    callers: ['gateway'],
    request: FindUserGrantRequestSchema,
    response: FindUserGrantResponseSchema,
    // Two index probes; on the hot path of credential-only mode and every gateway-mode tool call.
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.uuid(m.userId, 'userId'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...check.maxLength(m.integration, 64, 'integration'),
    ],
  }),
  revokeGrant: defineRpc({
    subject: 'broker.v1.revoke_grant',
    callers: ['gateway'],
    request: RevokeConnectionGrantRequestSchema,
    response: RevokeConnectionGrantResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.uuid(m.connectionId, 'connectionId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...((m.personSessionToken === '') === (m.orgId === '')
        ? [{ path: 'personSessionToken', message: 'exactly one of personSessionToken and orgId must be set' }]
        : []),
      ...optionalPersonSessionToken(m.personSessionToken, 'personSessionToken'),
      ...optionalUuid(m.orgId, 'orgId'),
    ],
  }),
  removeConnection: defineRpc({
    subject: 'broker.v1.remove_connection',
    callers: ['gateway'],
    request: RemoveConnectionRequestSchema,
    response: RemoveConnectionResponseSchema,
    timeoutMs: 15_000,
    validate: (m) => [
      ...check.uuid(m.connectionId, 'connectionId'),
      ...personSessionToken(m.personSessionToken, 'personSessionToken'),
    ],
  }),
  listUserConnections: defineRpc({
    subject: 'broker.v1.list_user_connections',
    callers: ['gateway'],
    request: ListUserConnectionsRequestSchema,
    response: ListUserConnectionsResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...personSessionToken(m.personSessionToken, 'personSessionToken')],
  }),
  configureWebhook: defineRpc({
    subject: 'broker.v1.configure_webhook',
    callers: ['gateway'],
    request: ConfigureWebhookRequestSchema,
    response: ConfigureWebhookResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.url, 'url'),
      ...check.maxLength(m.url, 2048, 'url'),
    ],
  }),
  getWebhook: defineRpc({
    subject: 'broker.v1.get_webhook',
    callers: ['gateway'],
    request: WebhookRefSchema,
    response: GetWebhookResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.applicationId, 'applicationId')],
  }),
  deleteWebhook: defineRpc({
    subject: 'broker.v1.delete_webhook',
    callers: ['gateway'],
    request: WebhookRefSchema,
    response: DeleteWebhookResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.applicationId, 'applicationId')],
  }),
  rotateWebhookSecret: defineRpc({
    subject: 'broker.v1.rotate_webhook_secret',
    callers: ['gateway'],
    request: RotateWebhookSecretRequestSchema,
    response: RotateWebhookSecretResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...(m.overlapSeconds > 7 * 86_400 ? [{ path: 'overlapSeconds', message: 'at most 7 days' }] : []),
    ],
  }),
  listWebhookMessages: defineRpc({
    subject: 'broker.v1.list_webhook_messages',
    callers: ['gateway'],
    request: ListWebhookMessagesRequestSchema,
    response: ListWebhookMessagesResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...(m.limit < 1 || m.limit > 100 ? [{ path: 'limit', message: 'must be 1..100' }] : []),
      ...check.maxLength(m.cursor, 200, 'cursor'),
    ],
  }),
  replayWebhookMessage: defineRpc({
    subject: 'broker.v1.replay_webhook_message',
    callers: ['gateway'],
    request: ReplayWebhookMessageRequestSchema,
    response: ReplayWebhookMessageResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.uuid(m.messageId, 'messageId'),
    ],
  }),
  putMcpOAuthServer: defineRpc({
    subject: 'broker.v1.put_mcp_oauth_server',
    callers: ['gateway'],
    request: PutMcpOAuthServerRequestSchema,
    response: PutMcpOAuthServerResponseSchema,
    // Discovery and a client registration at the server's authorization server: several round trips.
    timeoutMs: 30_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...check.maxLength(m.integration, 64, 'integration'),
      ...check.nonEmpty(m.url, 'url'),
      ...check.maxLength(m.url, 2000, 'url'),
      ...check.maxLength(m.clientId, 500, 'clientId'),
      ...check.maxLength(m.clientSecret, 500, 'clientSecret'),
    ],
  }),
  deleteMcpOAuthServer: defineRpc({
    subject: 'broker.v1.delete_mcp_oauth_server',
    callers: ['gateway'],
    request: DeleteMcpOAuthServerRequestSchema,
    response: DeleteMcpOAuthServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.nonEmpty(m.integration, 'integration')],
  }),
  listMcpOAuthServers: defineRpc({
    subject: 'broker.v1.list_mcp_oauth_servers',
    callers: ['gateway'],
    request: ListMcpOAuthServersRequestSchema,
    response: ListMcpOAuthServersResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId')],
  }),
} as const;
