import type { Transport } from './http.js';
import type { Credential, CredentialInput } from './types.js';

/** Credential-only mode (docs/gateway-mode.md): your backend calls the source itself. */
export class CredentialsClient {
  constructor(private readonly http: Transport) {}

  /**
   * The person's short-lived source token for `integration` (never the refresh token); ask
   * again when `expiresAt` nears instead of keeping it. A person without a usable connection
   * is a GatewayError `connection_required` whose problem carries `connectUrl`.
   */
  issue(input: CredentialInput): Promise<Credential> {
    return this.http.request<Credential>({ method: 'POST', path: '/v1/credentials', json: input });
  }
}
