import type { Connection } from '../connections/connections.repository.js';
import type { Integration } from '../integrations/integration-catalog.js';
import type { Credential } from '../vault/credential-vault.js';
import type { ConnectSession } from './connect-sessions.repository.js';
import type { FlowResult } from './flow-result.js';

/** What the person's consent leads to. */
export type Consent =
  /** A credential right away (a pasted key, or none at all): the flow commits now. */
  | { next: 'commit'; credential: Credential; sourceScopes: string[] }
  /** The source must authorize first: the browser goes there, and comes back to the callback. */
  | { next: 'redirect'; result: FlowResult };

export interface ConsentInput {
  session: ConnectSession;
  integration: Integration;
  userId: string;
  /** What the person pasted on the consent page (api_key only; empty otherwise). */
  apiKey: string;
  /** The user's connection to this integration, if any (already checked to be of the session's org). */
  current: Connection | null;
  /** The person's passkey assertion over the consent (checked by the Personal Server already). */
  consentAssertion: string;
}

/**
 * How one auth type connects a source. Everything shared (sessions, reuse of an existing
 * connection, the final commit) stays in ConnectService; only what differs is here.
 */
export interface ConnectMethod {
  /** At session creation: throws integration_not_allowed when this gateway cannot connect the integration. */
  assertConfigured(integration: Integration): void;
  /** The person allowed: a credential to store now, or the source's authorization first. */
  consent(input: ConsentInput): Promise<Consent>;
}

/** One method per auth type: a new auth type fails to compile until it has one. */
export type ConnectMethods = Record<Integration['authType'], ConnectMethod>;
export const CONNECT_METHODS = Symbol('CONNECT_METHODS');
