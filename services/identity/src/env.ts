import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { keyStoreEnvShape, refineKeyStoreEnv } from '@context-gateway/crypto';
import { DEFAULT_HTTP_PORT } from '@context-gateway/proto';
import { parseEnv, personStepUpEnvShape, refineRuntimeEnv, runtimeEnvShape } from '@context-gateway/service-kit';
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
    /**
     * Adding or removing a passkey, and deleting the account, need the account's session
     * opened by a passkey use this recent: a stolen or old session alone must not be enough to
     * plant or strip a credential, and a bare user id is never enough.
     */
    ...personStepUpEnvShape,
    /** How long a passkey ceremony's challenge may be answered (seconds); default 5 minutes. */
    WEBAUTHN_CHALLENGE_TTL_SECONDS: z.coerce.number().int().min(1).max(600).default(300),
    /** The services' key folder: the authorization server's keyring lives next to this file unless OAUTH_KEYRING_FILE says otherwise. */
    MASTER_KEY_FILE: z.string().min(1).default('.data/keys/master.key'),
    /**
     * Where identity's KEK lives (one for this service only; it seals the authorization
     * server's private signing keys and organizations' SSO client secrets stored in Postgres):
     * KEY_PROVIDER=pkcs11 keeps it in a token (label PKCS11_KEY_LABEL, `.v<N>` per version),
     * KEY_PROVIDER=local (development) in OAUTH_KEYRING_FILE.
     */
    ...keyStoreEnvShape('context-gateway.identity.kek'),
    /**
     * KEY_PROVIDER=local: identity's own keyring file (libs/crypto LocalKeyProvider).
     * Default: `identity-oauth.key` next to MASTER_KEY_FILE.
     */
    OAUTH_KEYRING_FILE: z.string().min(1).optional(),
    /** Create a fresh keyring when none exists (first start). Off in production: a missing key file must stop the service. */
    OAUTH_KEYRING_CREATE_IF_MISSING: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
    /**
     * How long a rotated-in signing or cookie key is only published before it is used
     * (default 1 hour): every verifier's cache has it by then (the gateway re-reads the
     * JWKS at least every 10 minutes). identity re-reads its keys every 5 minutes.
     */
    OAUTH_KEY_ACTIVATION_SECONDS: z.coerce
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .default(3600),
    /** Lifetime of an OAuth access token (a JWT the gateway verifies locally); default 10 minutes. */
    OAUTH_ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(3_600).default(600),
    /** Lifetime of a refresh token and of the grant behind it; default 30 days. Each refresh rotates it. */
    OAUTH_REFRESH_TOKEN_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(300)
      .max(365 * 24 * 3600)
      .default(30 * 24 * 3600),
    /**
     * Accept an organization's SSO issuer on plain http when it is on this machine
     * (localhost, 127.0.0.1, [::1]): development and tests only. Every other issuer must be
     * https: ID tokens and client secrets must not cross a network in clear.
     */
    SSO_ALLOW_INSECURE_LOCALHOST: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /**
     * Client ID Metadata Documents (MCP clients whose client_id is an https URL): hosts the
     * operator allows such URLs on, comma-separated (e.g. `claude.ai,vscode.dev`). Unset: any
     * public https host an organization allows. Either way a URL is fetched only once some
     * organization allowed it (admin API), and only from a public address.
     */
    OAUTH_CIMD_ALLOWED_HOSTS: z
      .string()
      .optional()
      .transform((v) =>
        v
          ? v
              .split(',')
              .map((h) => h.trim().toLowerCase())
              .filter(Boolean)
          : undefined,
      ),
    /**
     * Tests only: a PEM CA certificate trusted for metadata documents (a test serves them over
     * https with a self-signed certificate). Accepted only when NODE_ENV=test (Jest sets it, and
     * the e2e stack inherits it from Jest): nowhere else can a deployment trust a stray CA.
     */
    OAUTH_CIMD_TEST_CA_FILE: z.string().min(1).optional(),
    /**
     * Tests only: fetch metadata documents from 127.0.0.1 and ::1, which the SSRF guard otherwise
     * refuses like every private address (the rest of 127.0.0.0/8 stays refused, so a test can
     * still show that refusal); the admin API then also accepts metadata URLs on loopback
     * addresses. Accepted only when NODE_ENV=test, like OAUTH_CIMD_TEST_CA_FILE.
     */
    OAUTH_CIMD_ALLOW_LOOPBACK: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /**
     * Dynamic client registration (RFC 7591) at `/oauth/reg`: off by default, and then the
     * endpoint does not exist and discovery names none. On, registering needs an initial
     * access token an organization admin issued (admin API); the client becomes an
     * application of that organization, with no capabilities until the admin grants some.
     */
    OAUTH_DYNAMIC_REGISTRATION: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /** `production` in the container image (Dockerfile), `test` under Jest: test-only settings need `test`. */
    NODE_ENV: z.string().optional(),
  })
  .superRefine((env, ctx) => {
    refineRuntimeEnv(env, ctx);
    refineKeyStoreEnv(env, ctx);
    // Allow-listed rather than refused in production: a deployment that forgot NODE_ENV must
    // not be able to switch off the SSRF guard.
    if (env.NODE_ENV !== 'test') {
      if (env.OAUTH_CIMD_TEST_CA_FILE !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['OAUTH_CIMD_TEST_CA_FILE'],
          message: 'is for tests only (NODE_ENV=test)',
        });
      if (env.OAUTH_CIMD_ALLOW_LOOPBACK)
        ctx.addIssue({
          code: 'custom',
          path: ['OAUTH_CIMD_ALLOW_LOOPBACK'],
          message: 'is for tests only (NODE_ENV=test)',
        });
    }
    if (env.OAUTH_CIMD_TEST_CA_FILE !== undefined && !existsSync(env.OAUTH_CIMD_TEST_CA_FILE))
      ctx.addIssue({ code: 'custom', path: ['OAUTH_CIMD_TEST_CA_FILE'], message: 'no such file' });
  });

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}

/** Where identity's own keyring is (OAUTH_KEYRING_FILE, or next to MASTER_KEY_FILE). */
export function oauthKeyringPath(env: Pick<Env, 'OAUTH_KEYRING_FILE' | 'MASTER_KEY_FILE'>): string {
  return resolve(env.OAUTH_KEYRING_FILE ?? join(dirname(env.MASTER_KEY_FILE), 'identity-oauth.key'));
}
