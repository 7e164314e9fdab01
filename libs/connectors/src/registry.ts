import type { Connector } from './connector.js';
import { GithubConnector } from './github.connector.js';
import { SpotifyConnector } from './spotify.connector.js';

/** Integrations synced by pulling from an API. Netflix is not here: it is imported from an upload. */
export const CONNECTORS: Record<string, Connector> = {
  github: new GithubConnector(),
  spotify: new SpotifyConnector(),
};

export function connectorFor(integration: string): Connector | undefined {
  return Object.prototype.hasOwnProperty.call(CONNECTORS, integration) ? CONNECTORS[integration] : undefined;
}
