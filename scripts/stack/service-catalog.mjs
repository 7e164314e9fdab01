// @ts-check
// The seven deployables as `pnpm start`, `pnpm demo` and the tests' stacks know them: read
// from proto/services.json, the copy of proto/src/services.ts that plain Node scripts can
// read without a build (proto/src/services.spec.ts keeps the two equal).
import { readFileSync } from 'node:fs';

/** @typedef {'gateway'|'identity'|'policy'|'connection-broker'|'audit'|'personal-server'|'sync-worker'} ServiceName */
/** @typedef {{ name: ServiceName, plane: 'control'|'data', subjectPrefix: string, httpPort: number }} ServiceEntry */

/** @type {readonly ServiceEntry[]} */
const SERVICES = Object.freeze(JSON.parse(readFileSync(new URL('../../proto/services.json', import.meta.url), 'utf8')));

/** In start order: control plane first, the gateway last. */
export const SERVICE_NAMES = Object.freeze(SERVICES.map((s) => s.name));

/** The HTTP port each service listens on by default (the same default its own env.ts has). */
export const DEFAULT_PORTS = /** @type {Readonly<Record<ServiceName, number>>} */ (
  Object.freeze(Object.fromEntries(SERVICES.map((s) => [s.name, s.httpPort])))
);

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/context_gateway';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/**
 * @param {string} name
 * @returns {name is ServiceName}
 */
export function isServiceName(name) {
  return /** @type {readonly string[]} */ (SERVICE_NAMES).includes(name);
}
