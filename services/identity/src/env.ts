import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

/**
 * identity's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT.identity }),
    /**
     * The gateway's public address as browsers see it: the WebAuthn relying party. Its
     * origin is the exact origin a passkey response must come from, its host name the RP ID.
     */
    GATEWAY_PUBLIC_URL: z.string().url().default('http://localhost:8080'),
    /** How long a signed-in browser session lasts (seconds); default 12 hours. */
    SESSION_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(60)
      .max(30 * 24 * 3600)
      .default(12 * 3600),
    /** How long a passkey ceremony's challenge may be answered (seconds); default 5 minutes. */
    WEBAUTHN_CHALLENGE_TTL_SECONDS: z.coerce.number().int().min(1).max(600).default(300),
  })
  .superRefine(refineRuntimeEnv);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
