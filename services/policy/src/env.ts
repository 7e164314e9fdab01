import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * policy's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT.policy }),
    /**
     * Durable name of policy's CONTROL consumer. Every replica shares it (one message in flight
     * across all of them, in stream order); change it only to replay the stream from the start.
     */
    POLICY_CONTROL_CONSUMER: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .default('policy-control'),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
