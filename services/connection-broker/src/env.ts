import { keyStoreEnvShape, refineKeyStoreEnv } from '@context-gateway/crypto';
import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, personStepUpEnvShape, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/** Integrations whose catalog entries (integrations/<key>.json) may be overridden from the environment. */
const INTEGRATION_KEYS = ['github', 'spotify', 'demo', 'demo-keys', 'listenbrainz'] as const;

/** `demo-keys` → `INTEGRATION_DEMO_KEYS_`. */
export function integrationEnvPrefix(key: string): string {
  return `INTEGRATION_${key.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

const optionalUrl = z.string().url().optional();

/**
 * Per integration (prefix INTEGRATION_<KEY>_):
 * - BASE_URL: replaces the scheme+host+port of every catalog endpoint (OAuth and API), keeping
 *   paths: how tests and the demo point an integration at tools/source-simulators;
 * - AUTHORIZATION_URL, TOKEN_URL, REVOCATION_URL, API_BASE_URL, ISSUER: replace one endpoint whole;
 * - CLIENT_ID / CLIENT_SECRET: our OAuth client registered at the source (a source without
 *   them configured cannot be connected: connect sessions for it are refused).
 */
const integrationShape = Object.fromEntries(
  INTEGRATION_KEYS.flatMap((key) => {
    const p = integrationEnvPrefix(key);
    return [
      [`${p}BASE_URL`, optionalUrl],
      [`${p}AUTHORIZATION_URL`, optionalUrl],
      [`${p}TOKEN_URL`, optionalUrl],
      [`${p}REVOCATION_URL`, optionalUrl],
      [`${p}API_BASE_URL`, optionalUrl],
      [`${p}ISSUER`, optionalUrl],
      [`${p}CLIENT_ID`, z.string().min(1).optional()],
      [`${p}CLIENT_SECRET`, z.string().min(1).optional()],
    ];
  }),
) as Record<string, z.ZodOptional<z.ZodString>>;

/**
 * connection-broker's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT['connection-broker'] }),
    ...keyStoreEnvShape('context-gateway.connection-broker.kek'),
    /**
     * The folder of the local key files: this service's keyring and data keys default to
     * names beside it. The file itself is the keyring every service once shared; it is only
     * read once, to seed KEYRING_FILE when that does not exist yet (docs/operations.md, "Keys").
     */
    MASTER_KEY_FILE: z.string().min(1).default('.data/keys/master.key'),
    /**
     * KEY_PROVIDER=local: this service's own keyring, holding the KEK that wraps each
     * connection's data key (no other service reads it). Default: `connection-broker.keyring`
     * next to MASTER_KEY_FILE.
     */
    KEYRING_FILE: z.string().min(1).optional(),
    /**
     * Where connections' wrapped data keys live: one file per key, deliberately NOT in the
     * database, so deleting a connection (its key file) leaves its refresh token unreadable
     * even in a database backup taken earlier. Shared by every broker replica (a shared volume).
     * Default: `connection-broker-data-keys/` next to MASTER_KEY_FILE.
     */
    DATA_KEY_DIR: z.string().min(1).optional(),
    /** Create the first KEK (keyring file, or key in the token) when none exists (first start). Off in production: a missing key must stop the service, not silently start a new one. */
    MASTER_KEY_CREATE_IF_MISSING: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
    /** The gateway's public address: the sources redirect browsers to <this>/v1/connect/callback. */
    GATEWAY_PUBLIC_URL: z.string().url().default('http://localhost:8080'),
    /** How long an app's connect session can be used (the spec says 10 minutes; tests shorten it to test expiry). */
    CONNECT_SESSION_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).default(600),
    /** Revoking a grant and deleting a connection need a passkey use this recent (allowing one is signed by the passkey). */
    ...personStepUpEnvShape,
    /** Refresh an access token this many seconds before it expires, so a sync never starts with a token about to die. */
    TOKEN_REFRESH_SKEW_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
    /** Allow http:// source endpoints (the simulators). Never in production: tokens would cross the network in clear. */
    INTEGRATION_ALLOW_INSECURE_HTTP: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /**
     * Remote MCP servers with their own authorization server (gateway mode, `auth:
     * "mcp_oauth"`): discovery, registration, code exchange and refresh go only to https URLs
     * on public addresses, checked at every connection, unless these allow http:// and
     * loopback/private addresses. The same switches as the gateway's; development only.
     */
    MCP_ALLOW_INSECURE_UPSTREAMS: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    MCP_ALLOW_PRIVATE_UPSTREAMS: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /** Timeout for each request to a source (token exchange, refresh, revocation). */
    SOURCE_HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
    /**
     * Webhooks to applications (docs/webhooks.md). Endpoints must be public https: loopback,
     * private, link-local and other special-purpose addresses are refused (checked on the
     * address actually connected to) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS, and http:// unless
     * WEBHOOK_ALLOW_HTTP. Both are for development and tests only.
     */
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    WEBHOOK_ALLOW_HTTP: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /** One delivery attempt's time limit (connect, send, answer). */
    WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    /** The first retry's delay; each next one doubles (with jitter), capped at WEBHOOK_RETRY_MAX_MS. */
    WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(10).default(5_000),
    WEBHOOK_RETRY_MAX_MS: z.coerce
      .number()
      .int()
      .min(10)
      .default(6 * 3_600_000),
    /** Attempts before a message is given up (`failed`; a replay sends it again). */
    WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(15),
    /** How often the delivery loop looks for due messages. */
    WEBHOOK_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
    ...integrationShape,
  })
  .superRefine(refineRuntimeEnv)
  .superRefine(refineKeyStoreEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
