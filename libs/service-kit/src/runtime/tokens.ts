/** Injection tokens for what the runtime owns and a service's modules may ask for. */
export const PG_POOL = Symbol('PG_POOL');
export const NATS_CONNECTION = Symbol('NATS_CONNECTION');
export const LOGGER = Symbol('LOGGER');
export const SERVICE_INFO = Symbol('SERVICE_INFO');
/** The service's parsed env (its own src/env.ts type); inject with that type. */
export const SERVICE_ENV = Symbol('SERVICE_ENV');

export interface ServiceInfo {
  name: string;
  version: string;
  /** The Postgres schema this service owns. */
  databaseSchema: string;
}
