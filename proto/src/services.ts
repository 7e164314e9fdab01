/**
 * The one list of deployables, in start order (control plane first, then data plane, edge
 * last). Everything else derives from it: the subject prefixes here, each service's default
 * HTTP port (service-kit's env), `pnpm start`'s catalog and the container health probe (both
 * read `proto/services.json`, which services.spec.ts keeps equal to this list), and the
 * deploy and docs checks (deploy/deploy.spec.ts, docs/docs.spec.ts).
 */
export const SERVICES = [
  { name: 'identity', plane: 'control', subjectPrefix: 'identity', httpPort: 8081 },
  { name: 'policy', plane: 'control', subjectPrefix: 'policy', httpPort: 8082 },
  { name: 'connection-broker', plane: 'control', subjectPrefix: 'broker', httpPort: 8083 },
  { name: 'audit', plane: 'control', subjectPrefix: 'audit', httpPort: 8084 },
  // Short prefixes where ARCHITECTURE.md's vocabulary already names them (`ps.v1.shard.<n>.query`).
  { name: 'personal-server', plane: 'data', subjectPrefix: 'ps', httpPort: 8085 },
  { name: 'sync-worker', plane: 'data', subjectPrefix: 'sync', httpPort: 8086 },
  { name: 'gateway', plane: 'data', subjectPrefix: 'gateway', httpPort: 8080 },
] as const;

export type ServiceName = (typeof SERVICES)[number]['name'];

export const SERVICE_NAMES: readonly ServiceName[] = SERVICES.map((s) => s.name);

/** Each service's subject prefix: the first token of every subject it answers on. */
export const SUBJECT_PREFIX = Object.fromEntries(SERVICES.map((s) => [s.name, s.subjectPrefix])) as Record<
  ServiceName,
  string
>;

/** The HTTP port (health, and the gateway's public API) each service listens on by default. */
export const DEFAULT_HTTP_PORT = Object.fromEntries(SERVICES.map((s) => [s.name, s.httpPort])) as Record<
  ServiceName,
  number
>;
