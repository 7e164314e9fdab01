import { AdminClient } from './admin.js';
import { ConnectClient, ConnectionsClient } from './connections.js';
import { CredentialsClient } from './credentials.js';
import { Transport, type TransportOptions } from './http.js';
import { RecordsClient } from './records.js';
import { ImportsClient, SyncClient } from './sync.js';
import { WebhookMessagesClient } from './webhook-messages.js';

export interface ContextGatewayOptions extends Omit<TransportOptions, 'token'> {
  /** Your application's API key (`cg_sk_…`), issued by the operator. Keep it server-side. */
  apiKey: string;
}

/**
 * The gateway's public API for an app backend, authenticated with the application's API key.
 * One instance per key; it keeps no connection state and is safe to share.
 */
export class ContextGateway {
  readonly connect: ConnectClient;
  readonly connections: ConnectionsClient;
  readonly records: RecordsClient;
  readonly sync: SyncClient;
  readonly imports: ImportsClient;
  readonly credentials: CredentialsClient;
  readonly webhooks: WebhookMessagesClient;

  constructor(options: ContextGatewayOptions) {
    const { apiKey, ...rest } = options;
    const http = new Transport({ ...rest, token: apiKey });
    this.connect = new ConnectClient(http);
    this.connections = new ConnectionsClient(http);
    this.records = new RecordsClient(http);
    this.sync = new SyncClient(http, {
      now: options.now ?? Date.now,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    });
    this.imports = new ImportsClient(http);
    this.credentials = new CredentialsClient(http);
    this.webhooks = new WebhookMessagesClient(http);
  }
}

export interface ContextGatewayAdminOptions extends Omit<TransportOptions, 'token'> {
  /** The OPERATOR_TOKEN the gateway was started with. */
  operatorToken: string;
}

/** The operator's admin API (organizations, applications, API keys, allowed integrations). */
export function adminClient(options: ContextGatewayAdminOptions): AdminClient {
  const { operatorToken, ...rest } = options;
  return new AdminClient(new Transport({ ...rest, token: operatorToken }));
}
