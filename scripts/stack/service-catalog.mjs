// @ts-check
// The seven deployables and the HTTP port each one listens on by default. The ports match
// the defaults in every service's own env.ts, so a service started by hand and one started
// by `pnpm start` are found at the same address.

/** @typedef {'gateway'|'identity'|'policy'|'connection-broker'|'audit'|'personal-server'|'sync-worker'} ServiceName */

/** @type {readonly ServiceName[]} */
export const SERVICE_NAMES = Object.freeze([
  'gateway',
  'identity',
  'policy',
  'connection-broker',
  'audit',
  'personal-server',
  'sync-worker',
]);

/** @type {Readonly<Record<ServiceName, number>>} */
export const DEFAULT_PORTS = Object.freeze({
  gateway: 8080,
  identity: 8081,
  policy: 8082,
  'connection-broker': 8083,
  audit: 8084,
  'personal-server': 8085,
  'sync-worker': 8086,
});

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/context_gateway';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/**
 * @param {string} name
 * @returns {name is ServiceName}
 */
export function isServiceName(name) {
  return /** @type {readonly string[]} */ (SERVICE_NAMES).includes(name);
}
