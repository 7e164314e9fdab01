import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * policy's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    // policy's CONTROL consumer is `consumers.policyControl` in the proto catalog: its NATS
    // rights name it, so it is not configurable here (docs/trust-boundaries.md).
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT.policy }),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
