import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, personStepUpEnvShape, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * gateway's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT.gateway }),
    /** GitHub webhook secret (the GitHub App's, or the repository hooks'); unset: POST /v1/webhooks/github answers 404. */
    GITHUB_WEBHOOK_SECRET: z.string().min(16).optional(),
    /** Largest export upload (POST /v1/connections/{id}/imports) in bytes; the file is streamed, never held whole. */
    IMPORT_MAX_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(50 * 1024 * 1024),
    /** The gateway's address as browsers and app backends reach it: connect URLs and OpenAPI's server use it. */
    GATEWAY_PUBLIC_URL: z.string().url().default('http://localhost:8080'),
    /**
     * The operator's bearer token for the admin API (/v1/admin/*), at least 32 characters.
     * Unset (or empty): the admin API answers 503 admin_disabled.
     */
    OPERATOR_TOKEN: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z.string().min(32, 'must be at least 32 characters').optional(),
    ),
    /**
     * Passkey ceremonies one client address may start per minute; beyond it 429 rate_limited.
     * Behind a reverse proxy every client shares the proxy's address: raise it accordingly.
     */
    PASSKEY_STARTS_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(600),
    /** Changing one's own policy rules needs a passkey use this recent (the same value as the broker's and identity's). */
    ...personStepUpEnvShape,
    /** How long a request waits for the AUDIT stream's ack before failing with audit_unavailable (503). */
    AUDIT_PUBLISH_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2_000),
    /**
     * How long a decision may wait for the gateway's policy cache to catch up with a change
     * that returned before it started (docs/policy.md); after that it fails closed (503
     * policy_unavailable) rather than decide on rules that may be stale.
     */
    POLICY_FRESHNESS_TIMEOUT_MS: z.coerce.number().int().min(50).max(30_000).default(3_000),
    /**
     * API keys identity accepted are remembered (as SHA-256 only) so requests need not ask it
     * each time; a revocation still refuses the very next request (auth/api-key-cache.ts).
     * After API_KEY_REFRESH_MS a used key is asked again in the background (keeps its
     * last-used time accurate); after API_KEY_MAX_AGE_MS in the foreground. 0 turns the
     * memory off (identity asked on every request).
     */
    API_KEY_REFRESH_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000),
    API_KEY_MAX_AGE_MS: z.coerce.number().int().min(0).max(3_600_000).default(600_000),
    API_KEY_CACHE_ENTRIES: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
    /**
     * identity's own HTTP address, where the OAuth authorization server runs: the gateway
     * forwards `/oauth/*` and the discovery documents there. Reachable from the gateway
     * only (identity trusts the X-Forwarded-* headers the gateway sets).
     */
    IDENTITY_HTTP_URL: z.string().url().default(`http://127.0.0.1:${DEFAULT_HTTP_PORT.identity}`),
    /**
     * Load shedding (src/http/admission.ts): requests this gateway process works on at once;
     * one more answers 503 service_unavailable with Retry-After at once instead of queueing
     * (latency ≈ in-flight ÷ throughput, so this bounds it). 0: no cap.
     */
    SHED_MAX_IN_FLIGHT: z.coerce.number().int().min(0).max(1_000_000).default(512),
    /** Load shedding: mean event-loop delay (ms, sampled every second) above which new requests get 503. 0: off. */
    SHED_MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(200),
    /** Load shedding: heap in use (MiB) above which new requests get 503, so memory cannot grow without bound. 0: off. */
    SHED_MAX_HEAP_MIB: z.coerce.number().int().min(0).max(1_000_000).default(1_536),
    /**
     * Rate limits (src/http/rate-limits.ts) count requests per window of this many seconds,
     * in Postgres (gateway.rate_limits), so every gateway replica shares one count.
     */
    RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3_600).default(10),
    /**
     * Requests per window one API key or access token may make (all replicas together);
     * beyond it 429 rate_limited with Retry-After. 0: no per-key limit.
     */
    RATE_LIMIT_PER_KEY: z.coerce.number().int().min(0).max(100_000_000).default(30_000),
    /**
     * Requests per window one client address may make (all replicas together), counted before
     * authentication. Behind a reverse proxy set HTTP_TRUSTED_PROXIES, or every client shares
     * the proxy's address. 0: no per-address limit.
     */
    RATE_LIMIT_PER_IP: z.coerce.number().int().min(0).max(100_000_000).default(60_000),
    /**
     * How long a request waits for the shared counter in Postgres; slower (or Postgres down),
     * it is counted by this process alone (the limit divided by RATE_LIMIT_REPLICAS) and goes on.
     */
    RATE_LIMIT_STORE_TIMEOUT_MS: z.coerce.number().int().min(10).max(10_000).default(250),
    /** Gateway replicas deployed: the share of each limit one process enforces while the shared counter is unreachable. */
    RATE_LIMIT_REPLICAS: z.coerce.number().int().min(1).max(1_000).default(1),
    /**
     * Failed authentications (bad API key, operator token or session) allowed per client
     * address and AUTH_FAILURE_WINDOW_SECONDS; past it the address gets 429 rate_limited until
     * the window ends, without its credentials being checked. 0: no limit. Each failure
     * within the limit is audited (authentication_failed).
     */
    AUTH_FAILURES_PER_IP: z.coerce.number().int().min(0).max(1_000_000).default(100),
    AUTH_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
    /** How long a forwarded authorization server request may take before 502 authorization_server_unavailable. */
    OAUTH_PROXY_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    /** Gateway mode (docs/gateway-mode.md): how long one upstream MCP exchange may take. */
    MCP_UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
    /** Gateway mode: the largest upstream answer read; bigger is an MCP error, never buffered whole. */
    MCP_MAX_RESULT_BYTES: z.coerce.number().int().min(1_024).max(100_000_000).default(4_194_304),
    /** Gateway mode: how long a server's tool list is used before it is read again (unless the list says less). */
    MCP_TOOLS_TTL_MS: z.coerce.number().int().min(0).max(86_400_000).default(300_000),
    /**
     * Gateway mode: the longest one standing stream lives (an upstream listener's, or a client's
     * subscriptions/listen or GET stream at /mcp); it is then closed (gracefully) and reopened
     * by its end, so no stream outlives a credential check by more than this.
     */
    MCP_UPSTREAM_STREAM_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(600_000),
    /** Gateway mode: upstream listeners (server × person) one gateway keeps open at most; past it, lists follow their TTL. */
    MCP_MAX_UPSTREAM_LISTENERS: z.coerce.number().int().min(0).max(100_000).default(500),
    /** Gateway mode: client streams (subscriptions/listen, GET) one gateway holds open at most. */
    MCP_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(1_024),
    /** Gateway mode: client streams one organization's agents may hold open at one gateway (its share of MCP_MAX_STREAMS). */
    MCP_MAX_STREAMS_PER_ORG: z.coerce.number().int().min(1).max(100_000).default(256),
    /** Gateway mode: client streams one application may hold open for one person at once. */
    MCP_MAX_STREAMS_PER_PERSON: z.coerce.number().int().min(1).max(1_000).default(8),
    /** Gateway mode: resource subscriptions one person may hold at once (all applications, both revisions). */
    MCP_MAX_RESOURCE_SUBSCRIPTIONS: z.coerce.number().int().min(1).max(10_000).default(100),
    /** Gateway mode: how long a held tool call's approval request (and an approval not yet used) stays valid. */
    MCP_APPROVAL_TTL_MS: z.coerce.number().int().min(10_000).max(86_400_000).default(600_000),
    /** Gateway mode: a tool no read of its server has shown for this long drops out of the org's catalog. */
    MCP_TOOLS_RETAIN_UNSEEN_MS: z.coerce.number().int().min(1_000).max(2_592_000_000).default(3_600_000),
    /** Gateway mode: http:// upstream MCP servers (development only). */
    MCP_ALLOW_INSECURE_UPSTREAMS: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /** Gateway mode: upstreams on loopback, private or link-local addresses (development only). */
    MCP_ALLOW_PRIVATE_UPSTREAMS: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /**
     * Gateway mode: browser origins allowed to call /mcp (comma-separated). A request with any
     * other Origin is refused (DNS rebinding); requests without one (agents, servers) pass.
     */
    MCP_ALLOWED_ORIGINS: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((o) => o.trim())
          .filter((o) => o !== ''),
      ),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
