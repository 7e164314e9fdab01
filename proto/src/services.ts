/** Every deployable, in start order (control plane first, then data plane, edge last). */
export const SERVICE_NAMES = [
  'identity',
  'policy',
  'connection-broker',
  'audit',
  'personal-server',
  'sync-worker',
  'gateway',
] as const;

export type ServiceName = (typeof SERVICE_NAMES)[number];

/**
 * Each service's subject prefix: the first token of every subject it answers on.
 * Short where ARCHITECTURE.md's vocabulary already names them (`ps.v1.shard.<n>.query`).
 */
export const SUBJECT_PREFIX: Record<ServiceName, string> = {
  gateway: 'gateway',
  identity: 'identity',
  policy: 'policy',
  'connection-broker': 'broker',
  audit: 'audit',
  'personal-server': 'ps',
  'sync-worker': 'sync',
};

export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value);
}
