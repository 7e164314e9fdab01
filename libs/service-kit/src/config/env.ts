import { existsSync } from 'node:fs';

import { readUserSeed } from '@context-gateway/messaging';
import { LOG_LEVELS } from '@context-gateway/observability';
import { z } from 'zod';

/** Raised at boot with every problem of the environment listed at once. */
export class EnvError extends Error {
  override readonly name = 'EnvError';
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Parses the environment with a service's zod schema, once, at boot. Fails listing every
 * problem (not just the first), naming variables but never echoing their values, since a
 * wrong value may well be a secret in the wrong place.
 */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  source: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const result = schema.safeParse(source);
  if (result.success) return result.data;
  throw new EnvError(result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`));
}

const port = z.coerce.number().int().min(0).max(65_535);
const url = (protocols: string[]) =>
  z.string().refine((value) => value.split(',').every((u) => protocols.some((p) => u.trim().startsWith(`${p}://`))), {
    message: `must be a ${protocols.join(' or ')} URL`,
  });

/**
 * The variables every service reads to run at all: where its database and bus are, where it
 * listens, how it logs and traces, how long it may take to stop. Each service's env.ts
 * spreads this shape into its own schema and adds what only it needs.
 */
export function runtimeEnvShape(defaults: { httpPort: number }) {
  return {
    /** Postgres; each service keeps its tables in its own schema of this database. */
    DATABASE_URL: url(['postgres', 'postgresql']).default('postgres://postgres@127.0.0.1:5432/context_gateway'),
    /**
     * This service's own database login (a role per service, `pnpm db:roles`): replace the
     * user and password of DATABASE_URL, so the URL itself can be shared config and only the
     * password is a Secret. Unset: DATABASE_URL's own credentials.
     */
    DATABASE_USER: z.string().min(1).optional(),
    DATABASE_PASSWORD: z.string().min(1).optional(),
    /**
     * `apply`: bring the schema up to date at boot (development, one login for everything).
     * `verify`: only check that every migration is applied and refuse to start otherwise;
     * for a service login that may not change the schema (migrations run as the owner role
     * in `pnpm db:migrate` or the deployment's db-setup job).
     */
    DATABASE_MIGRATIONS: z.enum(['apply', 'verify']).default('apply'),
    /** Overrides the schema name (default: the service name, `-` → `_`); tests use throwaway schemas. */
    DATABASE_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase Postgres identifier')
      .optional(),
    /** Connections this process may hold; Postgres' own max_connections is shared by all services. */
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
    /** NATS with JetStream; a comma-separated list for a cluster. */
    NATS_URL: url(['nats', 'tls']).default('nats://127.0.0.1:4222'),
    /**
     * This service's NATS nkey seed (a file holding one `SU…` line; `pnpm nats:credentials`
     * makes one per service). Presented only when the server asks; its rights are the
     * service's subjects, generated from the proto catalog (docs/trust-boundaries.md).
     */
    NATS_NKEY_SEED_FILE: z.string().min(1).optional(),
    /** CA bundle to verify the NATS server's certificate (tls:// URLs with a private CA). */
    NATS_TLS_CA_FILE: z.string().min(1).optional(),
    /** Interface for the HTTP listener (health, and for the gateway the public API); 0.0.0.0 in containers. */
    HTTP_HOST: z.string().min(1).default('127.0.0.1'),
    HTTP_PORT: port.default(defaults.httpPort),
    /**
     * Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDRs,
     * e.g. the ingress). Unset: the socket's peer is the client. Per-client limits (passkey
     * ceremony starts) key on the result, so behind a proxy this must be set or every client
     * shares the proxy's address.
     */
    HTTP_TRUSTED_PROXIES: z
      .string()
      .optional()
      .transform((v) =>
        v
          ? v
              .split(',')
              .map((p) => p.trim())
              .filter(Boolean)
          : undefined,
      ),
    /**
     * The HTTP listener's limits (ms). A request must arrive whole within
     * HTTP_REQUEST_TIMEOUT_MS and its headers within HTTP_HEADERS_TIMEOUT_MS, else 408 and
     * the connection closes: a client that sends less body than its Content-Length (or
     * trickles headers) cannot hold a connection. An idle keep-alive connection closes after
     * HTTP_KEEP_ALIVE_TIMEOUT_MS. Large uploads over slow links need a larger request timeout.
     */
    HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000),
    HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(10_000),
    HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(5_000),
    /**
     * Port of the listener that serves only GET /metrics (Prometheus), separate from
     * HTTP_PORT in every service so the gateway's public port never exposes metrics; the
     * cluster lets only Prometheus reach it. Unset: HTTP_PORT + 1000 (gateway 9080 …
     * sync-worker 9086), or an OS-chosen port when HTTP_PORT is 0 (tests, extra shards).
     */
    METRICS_PORT: port.optional(),
    /** Interface of the metrics listener; default HTTP_HOST. */
    METRICS_HOST: z.string().min(1).optional(),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
    /**
     * Where spans go: nowhere, stdout, or an OTLP/HTTP collector. With `none`, spans of traces
     * begun here are not recorded (unsampled, and services after this one follow that flag); a
     * caller's sampled trace still is. Ids propagate either way. Use the same value on every
     * service, or one that exports gets unsampled traces from one that doesn't.
     */
    OTEL_TRACES_EXPORTER: z.enum(['none', 'console', 'otlp']).default('none'),
    OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
    /** How long to keep retrying Postgres and NATS at boot before exiting (the supervisor restarts us). */
    BOOT_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
    /** After SIGTERM: time to finish in-flight work before the process exits anyway. */
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  };
}

export type RuntimeEnv = z.infer<z.ZodObject<ReturnType<typeof runtimeEnvShape>>>;

/** DATABASE_URL with DATABASE_USER / DATABASE_PASSWORD in place of its own credentials, when set. */
export function databaseUrl(env: Pick<RuntimeEnv, 'DATABASE_URL' | 'DATABASE_USER' | 'DATABASE_PASSWORD'>): string {
  if (!env.DATABASE_USER && !env.DATABASE_PASSWORD) return env.DATABASE_URL;
  const url = new URL(env.DATABASE_URL);
  if (env.DATABASE_USER) url.username = encodeURIComponent(env.DATABASE_USER);
  if (env.DATABASE_PASSWORD) url.password = encodeURIComponent(env.DATABASE_PASSWORD);
  return url.toString();
}

/** Where GET /metrics listens: METRICS_PORT, else HTTP_PORT + 1000, else (HTTP_PORT 0 or too high) an OS-chosen port. */
export function metricsListen(env: Pick<RuntimeEnv, 'HTTP_HOST' | 'HTTP_PORT' | 'METRICS_HOST' | 'METRICS_PORT'>): {
  host: string;
  port: number;
} {
  const derived = env.HTTP_PORT === 0 || env.HTTP_PORT + 1000 > 65_535 ? 0 : env.HTTP_PORT + 1000;
  return { host: env.METRICS_HOST ?? env.HTTP_HOST, port: env.METRICS_PORT ?? derived };
}

/** Cross-field rules every runtime env must satisfy; services chain it on their schema. */
export function refineRuntimeEnv<T extends RuntimeEnv>(env: T, ctx: z.RefinementCtx): void {
  if (env.NATS_NKEY_SEED_FILE !== undefined) {
    try {
      readUserSeed(env.NATS_NKEY_SEED_FILE);
    } catch (error) {
      // The message names the file and what is wrong with it, never its content.
      ctx.addIssue({ code: 'custom', path: ['NATS_NKEY_SEED_FILE'], message: (error as Error).message });
    }
  }
  if (env.NATS_TLS_CA_FILE !== undefined && !existsSync(env.NATS_TLS_CA_FILE)) {
    ctx.addIssue({ code: 'custom', path: ['NATS_TLS_CA_FILE'], message: 'no such file' });
  }
  if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['HTTP_HEADERS_TIMEOUT_MS'],
      message: 'must not exceed HTTP_REQUEST_TIMEOUT_MS',
    });
  }
  if (env.OTEL_TRACES_EXPORTER === 'otlp' && !env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    ctx.addIssue({
      code: 'custom',
      path: ['OTEL_EXPORTER_OTLP_ENDPOINT'],
      message: 'is required when OTEL_TRACES_EXPORTER=otlp',
    });
  }
}
