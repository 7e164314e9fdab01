import { keyStoreEnvShape, refineKeyStoreEnv } from '@context-gateway/crypto';
import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * personal-server's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
export const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT['personal-server'] }),
    /**
     * This process's shard, 0..SHARD_COUNT-1. It answers `ps.v1.shard.<SHARD_ID>.*` and only
     * for users the directory places on it. In Kubernetes it is the StatefulSet pod ordinal
     * (deploy/ derives it from the pod name); locally scripts/stack starts one process per shard.
     */
    SHARD_ID: z.coerce.number().int().min(0).max(1023).default(0),
    /**
     * How many shards exist. New users are placed by rendezvous hashing over 0..SHARD_COUNT-1;
     * raising it moves nobody until the rebalance command runs (docs/personal-server.md).
     */
    SHARD_COUNT: z.coerce.number().int().min(1).max(1024).default(1),
    /**
     * Where browsers reach the gateway: its origin is the WebAuthn origin, its host the RP ID,
     * of the passkey signatures this service verifies (the same value identity uses).
     */
    GATEWAY_PUBLIC_URL: z.string().url().default('http://localhost:8080'),
    ...keyStoreEnvShape('context-gateway.personal-server.kek'),
    /**
     * The folder of the local key files: this service's keyring and data keys default to
     * names beside it. The file itself is the keyring every service once shared; it is only
     * read once, to seed KEYRING_FILE when that does not exist yet (docs/operations.md, "Keys").
     */
    MASTER_KEY_FILE: z.string().min(1).default('.data/keys/master.key'),
    /**
     * KEY_PROVIDER=local: this service's own keyring (a 0600 JSON file; no other service
     * reads it). Default: `personal-server.keyring` next to MASTER_KEY_FILE.
     */
    KEYRING_FILE: z.string().min(1).optional(),
    /** Create the first KEK (keyring file, or key in the token) when none exists (first start). Off in production: a missing key must stop the service. */
    MASTER_KEY_CREATE_IF_MISSING: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
    /**
     * Where connections' wrapped data keys live: one file per key, deliberately NOT in the
     * database, so deleting the file makes the connection's records unreadable even from a
     * database backup taken earlier. Shared by every shard (a shared volume, or Vault/KMS in
     * its place). Default: `data-keys/` next to MASTER_KEY_FILE.
     */
    DATA_KEY_DIR: z.string().min(1).optional(),
    /** How long an unwrapped data key may be served from memory before the provider is asked again. */
    DATA_KEY_CACHE_TTL_MS: z.coerce
      .number()
      .int()
      .min(1_000)
      .default(10 * 60_000),
  })
  .superRefine(refineRuntimeEnv)
  .superRefine(refineKeyStoreEnv)
  .superRefine((env, ctx) => {
    if (env.SHARD_ID >= env.SHARD_COUNT) {
      ctx.addIssue({ code: 'custom', path: ['SHARD_ID'], message: 'must be below SHARD_COUNT' });
    }
  });

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
