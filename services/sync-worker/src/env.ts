import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * sync-worker's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT['sync-worker'] }),
    /** How often each connection is synced when nothing else asks (webhooks and "sync now" come on top). */
    SYNC_INTERVAL_MS: ms(5 * 60_000),
    /** How often the scheduler looks for connections whose interval came round. */
    SYNC_SCHEDULER_TICK_MS: ms(5_000),
    /** A job not acked (nor reported working) for this long is redelivered to another worker. */
    SYNC_JOB_ACK_WAIT_MS: ms(30_000),
    /** Deliveries of one job before it is dead-lettered and the connection shows `failed`. */
    SYNC_JOB_MAX_DELIVER: z.coerce.number().int().min(1).max(100).default(5),
    /** A worker's claim on a connection; renewed every third of it while the job runs. Keep it below the ack wait. */
    SYNC_LEASE_MS: ms(15_000),
    /** Jobs this process runs at once. */
    SYNC_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
    /** Jobs per integration this process runs at once: sources rate-limit per app, not per user. */
    SYNC_SOURCE_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(4),
    /** Longest Retry-After a job waits out in place; longer and the job is retried later (back-off). */
    SYNC_SOURCE_MAX_WAIT_MS: ms(60_000),
    /** Records per write to the Personal Server (its maximum is 500). */
    SYNC_WRITE_BATCH: z.coerce.number().int().min(1).max(500).default(500),
    /** Writes of one run in flight at once, while the connector fetches the next pages (a shard commits one connection's writes one at a time: more only queue there). */
    SYNC_WRITES_IN_FLIGHT: z.coerce.number().int().min(1).max(32).default(2),
    /** Retry back-off for a failed job: base * 2^(attempt-1), full jitter, capped. */
    SYNC_RETRY_BASE_MS: ms(1_000),
    SYNC_RETRY_MAX_MS: ms(60_000),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
