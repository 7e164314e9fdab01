import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';

import type { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { z } from 'zod';

import type { KeyProvider } from './key-provider.js';
import { LocalKeyProvider } from './local-key-provider.js';
import { Pkcs11KeyProvider } from './pkcs11/pkcs11-key-provider.js';
import { Pkcs11Signer } from './pkcs11/pkcs11-signer.js';
import type { Pkcs11Config } from './pkcs11/pkcs11-token.js';
import { LocalFileSigner, type Signer } from './signer.js';

const KEY_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * The key-store settings every service that holds keys puts in its env.ts (each with its
 * own default key label, so each service has its own KEK or signing key in the token).
 */
export function keyStoreEnvShape(defaultKeyLabel: string) {
  return {
    /** Where this service's keys live: `local` (a 0600 file, development) or `pkcs11` (an HSM or KMS front end). */
    KEY_PROVIDER: z.enum(['local', 'pkcs11']).default('local'),
    /** KEY_PROVIDER=pkcs11: path of the vendor's PKCS#11 module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so). */
    PKCS11_MODULE: z.string().min(1).optional(),
    /** KEY_PROVIDER=pkcs11: the label of the token holding this service's keys. */
    PKCS11_TOKEN_LABEL: z.string().min(1).max(32).optional(),
    /** KEY_PROVIDER=pkcs11: the token's user PIN; prefer PKCS11_PIN_FILE (a mounted Secret) so it is not in the environment. */
    PKCS11_PIN: z.string().min(1).optional(),
    /** KEY_PROVIDER=pkcs11: a file holding the user PIN (trailing newline ignored). */
    PKCS11_PIN_FILE: z.string().min(1).optional(),
    /** KEY_PROVIDER=pkcs11: the label of this service's key in the token (a KEK gets `.v<N>` appended per version). */
    PKCS11_KEY_LABEL: z
      .string()
      .regex(KEY_LABEL, 'letters, digits, ".", "_" and "-", at most 100')
      .default(defaultKeyLabel),
  };
}

type KeyStoreEnv = z.infer<z.ZodObject<ReturnType<typeof keyStoreEnvShape>>>;

/** Cross-field checks (superRefine): what KEY_PROVIDER=pkcs11 needs is there and reachable. */
export function refineKeyStoreEnv(env: KeyStoreEnv, ctx: z.RefinementCtx): void {
  if (env.KEY_PROVIDER !== 'pkcs11') return;
  const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (!env.PKCS11_MODULE) problem('PKCS11_MODULE', 'required when KEY_PROVIDER=pkcs11');
  else if (!readable(env.PKCS11_MODULE))
    problem('PKCS11_MODULE', `${env.PKCS11_MODULE} does not exist or is not readable`);
  if (!env.PKCS11_TOKEN_LABEL) problem('PKCS11_TOKEN_LABEL', 'required when KEY_PROVIDER=pkcs11');
  if (env.PKCS11_PIN && env.PKCS11_PIN_FILE) problem('PKCS11_PIN', 'set PKCS11_PIN or PKCS11_PIN_FILE, not both');
  if (!env.PKCS11_PIN && !env.PKCS11_PIN_FILE) {
    problem('PKCS11_PIN_FILE', 'PKCS11_PIN_FILE (or PKCS11_PIN) is required when KEY_PROVIDER=pkcs11');
  }
  if (env.PKCS11_PIN_FILE && !readable(env.PKCS11_PIN_FILE)) {
    problem('PKCS11_PIN_FILE', `${env.PKCS11_PIN_FILE} does not exist or is not readable`);
  }
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The token settings, with the PIN read from its file; undefined for KEY_PROVIDER=local. */
async function pkcs11Settings(env: KeyStoreEnv): Promise<(Pkcs11Config & { keyLabel: string }) | undefined> {
  if (env.KEY_PROVIDER !== 'pkcs11') return undefined;
  if (!env.PKCS11_MODULE || !env.PKCS11_TOKEN_LABEL) {
    throw new AppError('key_store_unavailable', 'KEY_PROVIDER=pkcs11 needs PKCS11_MODULE and PKCS11_TOKEN_LABEL');
  }
  let pin = env.PKCS11_PIN;
  if (env.PKCS11_PIN_FILE) {
    try {
      pin = (await readFile(env.PKCS11_PIN_FILE, 'utf8')).replace(/\r?\n$/, '');
    } catch (cause) {
      throw new AppError('key_store_unavailable', `PKCS11_PIN_FILE ${env.PKCS11_PIN_FILE} cannot be read`, [], {
        cause,
      });
    }
  }
  if (!pin) throw new AppError('key_store_login_failed', 'The PKCS#11 PIN is empty');
  return { module: env.PKCS11_MODULE, tokenLabel: env.PKCS11_TOKEN_LABEL, pin, keyLabel: env.PKCS11_KEY_LABEL };
}

/** What a service's KEK provider needs besides its env: its local keyring and first-start policy. */
export interface KeyProviderSetup {
  /** The keyring file used with KEY_PROVIDER=local. */
  localPath: string;
  /** Create the first KEK (file or token key) when none exists. */
  createIfMissing: boolean;
  /** Asked before that first KEK is created; throws to refuse (refuseNewKeyWhileInUse). */
  beforeCreate?: (where: string) => Promise<void>;
  /** KEY_PROVIDER=local: the formerly shared keyring to copy to `localPath` when that does not exist yet. */
  adoptLocalFrom?: string;
  clock?: Clock;
}

/** A closable KeyProvider: the local keyring or a KEK in a PKCS#11 token, as KEY_PROVIDER says. */
export type ClosableKeyProvider = KeyProvider & { close(): void };

export async function openKeyProvider(env: KeyStoreEnv, setup: KeyProviderSetup): Promise<ClosableKeyProvider> {
  const pkcs11 = await pkcs11Settings(env);
  if (pkcs11) {
    return Pkcs11KeyProvider.open({
      ...pkcs11,
      createIfMissing: setup.createIfMissing,
      beforeCreate: setup.beforeCreate,
    });
  }
  return LocalKeyProvider.open({
    path: setup.localPath,
    createIfMissing: setup.createIfMissing,
    beforeCreate: setup.beforeCreate,
    clock: setup.clock,
    adoptFrom: setup.adoptLocalFrom,
  });
}

/** An Ed25519 Signer: a PEM file (`local`) or a key pair in a PKCS#11 token, as KEY_PROVIDER says. */
export async function openSigner(env: KeyStoreEnv, setup: Omit<KeyProviderSetup, 'clock'>): Promise<Signer> {
  const pkcs11 = await pkcs11Settings(env);
  if (pkcs11) {
    return Pkcs11Signer.open({ ...pkcs11, createIfMissing: setup.createIfMissing, beforeCreate: setup.beforeCreate });
  }
  return LocalFileSigner.open({
    path: setup.localPath,
    createIfMissing: setup.createIfMissing,
    beforeCreate: setup.beforeCreate,
  });
}
