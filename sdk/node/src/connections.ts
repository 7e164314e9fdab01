import type { Transport } from './http.js';
import type { Connection, ConnectSession, ConnectSessionInput, RevokedGrant } from './types.js';

export const connectionPath = (connectionId: string) => `/v1/connections/${encodeURIComponent(connectionId)}`;

/** Step 1 of the connect flow (docs/connect-flow.md): your backend asks, the person's browser goes. */
export class ConnectClient {
  constructor(private readonly http: Transport) {}

  /**
   * A single-use session (ten minutes). Redirect the browser to `connectUrl`; it comes back to
   * your exact `callbackUrl` with `connectionId` and your `state`, or `error`. Check `state`.
   */
  createSession(input: ConnectSessionInput): Promise<ConnectSession> {
    return this.http.request<ConnectSession>({ method: 'POST', path: '/v1/connect/sessions', json: input });
  }
}

/** The connections your application holds a grant on. */
export class ConnectionsClient {
  constructor(private readonly http: Transport) {}

  /** Status and your grant's scopes; ConnectionNotFoundError for any connection you hold no grant on. */
  get(connectionId: string): Promise<Connection> {
    return this.http.request<Connection>({ method: 'GET', path: connectionPath(connectionId) });
  }

  /**
   * Gives up your application's grant; from the moment this returns, reading the connection
   * fails with `grant_revoked` (GrantRevokedError). Other applications' grants are untouched.
   */
  revoke(connectionId: string): Promise<RevokedGrant> {
    return this.http.request<RevokedGrant>({ method: 'DELETE', path: `${connectionPath(connectionId)}/grant` });
  }
}
