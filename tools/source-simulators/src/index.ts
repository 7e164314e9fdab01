export { startSimulator, type RunningSimulator, type SimulatorOptions, type SimulatorClientSpec } from './server.js';
export { SimulatorControl, type AccountSummary, type RegisteredClient } from './control/simulator-control.js';
export { completeAuthorization, type AuthorizeAs } from './complete-authorization.js';
export type { ProviderName, AccountSpec } from './simulator-context.js';
export type { StormConfig } from './throttle.js';
export type { Counters } from './counters.js';
export type { WebhookDelivery } from './webhooks.js';
export { obtainTokens, type ObtainedTokens } from './obtain-tokens.js';
export { availableProviders } from './server.js';
