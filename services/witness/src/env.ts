import { readFileSync } from 'node:fs';

import { keyStoreEnvShape, refineKeyStoreEnv } from '@context-gateway/crypto';
import { parseVerifierKey, type VerifierKey } from '@context-gateway/merkle-log';
import { LOG_LEVELS } from '@context-gateway/observability';
import { z } from 'zod';

/**
 * The witness's whole configuration. It runs outside the platform on purpose: no database,
 * no NATS, nothing shared with the services whose log it witnesses but the log's public key.
 */
const envSchema = z
  .object({
    /** The witness's name in its cosignature lines and verifier key (a C2SP key name, e.g. `witness.example.com/w1`). */
    WITNESS_NAME: z
      .string()
      .regex(/^[\x21-\x7e]+$/, 'printable ASCII, no spaces')
      .refine((v) => !v.includes('+'), 'no "+"')
      .default('witness.context-gateway.local/w1'),
    /**
     * The logs this witness cosigns: their verifier keys (`<origin>+<key id>+<base64>`, type
     * 0x01), comma- or newline-separated. A key's name is the origin it signs for; several
     * keys for one origin (a rotation) are all trusted. Empty: every submission is 404.
     */
    WITNESS_LOG_KEYS: z.string().default(''),
    /**
     * A file of more such verifier keys (one per line), read at start: for a log key handed
     * over as a file, e.g. the one `pnpm audit:log-key --out` writes. A missing file is an error.
     */
    WITNESS_LOG_KEYS_FILE: z.string().min(1).optional(),
    /**
     * Where the witness writes its own verifier key (public) once its key is open, for a log on
     * the same machine to pin (docker-compose.yml). Unset: it is only logged and served at /vkey.
     */
    WITNESS_PUBLISH_KEY_FILE: z.string().min(1).optional(),
    /** Where the latest cosigned checkpoint of each log is kept (one file per log, replaced atomically). */
    WITNESS_STATE_DIR: z.string().min(1).default('.data/witness'),
    /**
     * The cosigning key's store: KEY_PROVIDER=pkcs11 keeps it in a token (PKCS11_KEY_LABEL);
     * KEY_PROVIDER=local (development) in WITNESS_SIGNING_KEY_FILE, created on first start.
     */
    ...keyStoreEnvShape('witness.cosigning'),
    WITNESS_SIGNING_KEY_FILE: z.string().min(1).default('.data/witness-keys/witness-signing.key'),
    HTTP_HOST: z.string().min(1).default('0.0.0.0'),
    HTTP_PORT: z.coerce.number().int().min(0).max(65_535).default(8087),
    /** Largest request: 63 proof lines and a checkpoint with a few signatures fit in far less. */
    WITNESS_BODY_LIMIT_BYTES: z.coerce.number().int().min(1_024).max(1_048_576).default(16_384),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  })
  .superRefine((env, ctx) => {
    refineKeyStoreEnv(env, ctx);
    try {
      logKeysOf(env.WITNESS_LOG_KEYS);
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: ['WITNESS_LOG_KEYS'], message: (error as Error).message });
    }
  });

export type Env = z.infer<typeof envSchema>;

/** The trusted logs' verifier keys, by origin. */
export function logKeysOf(list: string): Map<string, VerifierKey[]> {
  const byOrigin = new Map<string, VerifierKey[]>();
  for (const text of list.split(/[,\n]/).map((s) => s.trim())) {
    if (text === '') continue;
    const key = parseVerifierKey(text);
    if (key.type !== 0x01) throw new Error(`${key.name}: a log's verifier key has type 0x01 (a note signature)`);
    byOrigin.set(key.name, [...(byOrigin.get(key.name) ?? []), key]);
  }
  return byOrigin;
}

/** Every trusted log key the environment names: WITNESS_LOG_KEYS and the file WITNESS_LOG_KEYS_FILE. */
export function trustedLogKeys(
  env: Pick<Env, 'WITNESS_LOG_KEYS' | 'WITNESS_LOG_KEYS_FILE'>,
): Map<string, VerifierKey[]> {
  let fromFile = '';
  if (env.WITNESS_LOG_KEYS_FILE !== undefined) {
    try {
      fromFile = readFileSync(env.WITNESS_LOG_KEYS_FILE, 'utf8');
    } catch (error) {
      throw new WitnessEnvError(
        `WITNESS_LOG_KEYS_FILE: cannot read ${env.WITNESS_LOG_KEYS_FILE}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  }
  try {
    return logKeysOf(`${env.WITNESS_LOG_KEYS}\n${fromFile}`);
  } catch (error) {
    throw new WitnessEnvError(`WITNESS_LOG_KEYS_FILE: ${(error as Error).message}`);
  }
}

/** Raised at boot with every problem of the environment listed, values never echoed. */
export class WitnessEnvError extends Error {
  override readonly name = 'WitnessEnvError';
}

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const result = envSchema.safeParse(source);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  throw new WitnessEnvError(`Invalid environment:\n${problems.join('\n')}`);
}
