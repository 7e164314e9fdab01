export { type AuthorizeAs, completeAuthorization } from './complete-authorization.js';
export { type AccountSummary, type RegisteredClient, SimulatorControl } from './control/simulator-control.js';
export type { Counters } from './counters.js';
export { type ObtainedTokens, obtainTokens } from './obtain-tokens.js';
export { defaultApiKey } from './providers/demo.provider.js';
export { defaultListenBrainzToken } from './providers/listenbrainz.data.js';
export type { Quirks } from './quirks.js';
export { type RunningSimulator, type SimulatorClientSpec, type SimulatorOptions, startSimulator } from './server.js';
export { availableProviders } from './server.js';
export type { AccountSpec, ProviderName } from './simulator-context.js';
export type { StormConfig } from './throttle.js';
export type { WebhookDelivery } from './webhooks.js';
// The pages the connectors read, as the sources' OpenAPI descriptions have them (tests and property tests).
export * as githubSchemas from './providers/github.schemas.js';
export * as spotifySchemas from './providers/spotify.schemas.js';
