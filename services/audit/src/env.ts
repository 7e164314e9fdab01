import { keyStoreEnvShape, refineKeyStoreEnv } from '@context-gateway/crypto';
import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
import { z } from 'zod';

import { parsePinnedKey } from './log/pinned-key.js';

/**
 * audit's whole configuration. Nothing else in the service reads process.env: main.ts
 * parses this once at boot and passes the result down.
 */
const envSchema = z
  .object({
    ...runtimeEnvShape({ httpPort: DEFAULT_HTTP_PORT.audit }),
    /**
     * The checkpoint signing key's store: KEY_PROVIDER=pkcs11 keeps it in a token (an Ed25519
     * key pair labelled PKCS11_KEY_LABEL, never in a file this service can read);
     * KEY_PROVIDER=local (development) keeps it in AUDIT_SIGNING_KEY_FILE.
     */
    ...keyStoreEnvShape('audit.checkpoint-signing'),
    /** The key folder (KEY_PROVIDER=local): the checkpoint signing key lives next to this path unless AUDIT_SIGNING_KEY_FILE says otherwise. */
    MASTER_KEY_FILE: z.string().min(1).default('.data/keys/master.key'),
    /** KEY_PROVIDER=local: Ed25519 checkpoint signing key (PKCS#8 PEM, 0600), created on first start. Default: `audit-signing.key` next to MASTER_KEY_FILE. */
    AUDIT_SIGNING_KEY_FILE: z.string().min(1).optional(),
    /** The log's name in every checkpoint (C2SP origin line) and the signature's key name. */
    AUDIT_LOG_ORIGIN: z
      .string()
      .regex(/^[\x21-\x7e]+$/, 'printable ASCII, no spaces')
      .refine((v) => !v.includes('+'), 'no "+"')
      .default('audit.context-gateway.local/v1'),
    /** Most events appended in one Postgres transaction. Larger batches append faster and hold more un-acked messages. */
    AUDIT_BATCH_SIZE: z.coerce.number().int().min(1).max(20_000).default(2_000),
    /** How long a pull waits for a batch to fill before appending what it has. */
    AUDIT_BATCH_WAIT_MS: z.coerce.number().int().min(10).max(10_000).default(200),
    /** Worker threads that decode, validate and canonicalize events for the log writer (about half its CPU). 0 does it on the writer's own thread. */
    AUDIT_DECODE_THREADS: z.coerce.number().int().min(0).max(16).default(1),
    /** A signed checkpoint is written this often while the log grows (never for an unchanged log). */
    AUDIT_CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
    /**
     * A C2SP tlog-witness outside the database and this service's reach (services/witness or
     * any other): every signed checkpoint is submitted to `<AUDIT_WITNESS_URL>/add-checkpoint`
     * with a consistency proof, and the cosignature stored with it. Unset: no witness.
     */
    AUDIT_WITNESS_URL: z
      .string()
      .url()
      .refine((v) => /^https?:\/\//.test(v), 'an http(s) URL')
      .transform((v) => v.replace(/\/+$/, ''))
      .optional(),
    /** The witness's verifier key (`<name>+<key id>+<base64>`, type 0x04): its answers are checked against it. */
    AUDIT_WITNESS_KEY: z.string().min(1).optional(),
    /** How long one submission to the witness may take. */
    AUDIT_WITNESS_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
    /** After a failed submission, the latest checkpoint is submitted again this much later. */
    AUDIT_WITNESS_RETRY_MS: z.coerce.number().int().min(100).default(30_000),
    /** A standby instance retries taking the writer lock this often. */
    AUDIT_STANDBY_POLL_MS: z.coerce.number().int().min(50).default(2_000),
  })
  .superRefine((env, ctx) => {
    refineRuntimeEnv(env, ctx);
    refineKeyStoreEnv(env, ctx);
    if ((env.AUDIT_WITNESS_URL === undefined) !== (env.AUDIT_WITNESS_KEY === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUDIT_WITNESS_KEY'],
        message: 'set AUDIT_WITNESS_URL and AUDIT_WITNESS_KEY together',
      });
    }
    if (env.AUDIT_WITNESS_KEY !== undefined) {
      try {
        parsePinnedKey(env.AUDIT_WITNESS_KEY, { type: 0x04 });
      } catch (error) {
        ctx.addIssue({ code: 'custom', path: ['AUDIT_WITNESS_KEY'], message: (error as Error).message });
      }
    }
  });

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
