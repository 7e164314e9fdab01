// @context-gateway/node: a typed client for the Context Gateway HTTP API (README.md).
export { type AdminClient } from './admin.js';
export { adminClient, ContextGateway, type ContextGatewayAdminOptions, type ContextGatewayOptions } from './client.js';
export { type ConnectClient, type ConnectionsClient } from './connections.js';
export { type CredentialsClient } from './credentials.js';
export {
  AuthenticationError,
  ConnectionNotFoundError,
  type FieldProblem,
  GatewayError,
  GatewayNetworkError,
  GrantRevokedError,
  PolicyDeniedError,
  ScopeNotGrantedError,
  UnavailableError,
  ValidationError,
} from './errors.js';
export type { components, paths } from './generated/api.js';
export { type Fetch } from './http.js';
export { type ListRecordsOptions, type RecordsClient } from './records.js';
export {
  type ImportOptions,
  type ImportProgress,
  type ImportsClient,
  type ImportSource,
  type SyncClient,
  type WaitForSyncOptions,
} from './sync.js';
export type * from './types.js';
export { type WebhookMessagesClient } from './webhook-messages.js';
export {
  Webhook,
  type WebhookFailure,
  type WebhookHeaders,
  type WebhookOptions,
  WebhookVerificationError,
} from './webhooks.js';
