import type { Connector } from './connector.js';
import { DemoConnector } from './demo.connector.js';
import { GithubConnector } from './github.connector.js';
import { ListenBrainzConnector } from './listenbrainz.connector.js';
import { SpotifyConnector } from './spotify.connector.js';

/** Integrations synced by pulling from an API. Netflix is not here: it is imported from an upload. */
export const CONNECTORS: Record<string, Connector> = {
  github: new GithubConnector(),
  spotify: new SpotifyConnector(),
  listenbrainz: new ListenBrainzConnector(),
  // The demo sources of `pnpm demo` (tools/source-simulators): one API, two ways in.
  demo: new DemoConnector('demo', true),
  'demo-keys': new DemoConnector('demo-keys', false),
};

export function connectorFor(integration: string): Connector | undefined {
  return Object.prototype.hasOwnProperty.call(CONNECTORS, integration) ? CONNECTORS[integration] : undefined;
}
