import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * audit's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
export const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: 8084 }),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
