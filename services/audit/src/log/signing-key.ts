import { dirname, join, resolve } from 'node:path';

import { openSigner, refuseNewKeyWhileInUse, type Signer } from '@context-gateway/crypto';
import { ed25519KeyId, encodeVerifierKey } from '@context-gateway/merkle-log';
import type { Pool } from 'pg';

import type { Env } from '../env.js';
import { LogRepository } from './log.repository.js';

export interface CheckpointKey {
  /** Signs checkpoints; with KEY_PROVIDER=pkcs11 the private key stays in the token. */
  signer: Signer;
  /** The signed-note key name: the log's origin. */
  keyName: string;
  /** Hex of the C2SP key id (first 4 bytes of SHA-256(name, 0x01, key)), stored per checkpoint. */
  keyId: string;
  /** The C2SP verifier key (`<origin>+<key id>+<base64>`): what auditors pin for `audit:verify --public-key`. */
  verifierKey: string;
}

/** Where the local key file lives (KEY_PROVIDER=local): AUDIT_SIGNING_KEY_FILE, or `audit-signing.key` next to the master keyring. */
function signingKeyPath(env: Pick<Env, 'AUDIT_SIGNING_KEY_FILE' | 'MASTER_KEY_FILE'>): string {
  return resolve(env.AUDIT_SIGNING_KEY_FILE ?? join(dirname(env.MASTER_KEY_FILE), 'audit-signing.key'));
}

/**
 * The checkpoint signing key, from the key store KEY_PROVIDER names (libs/crypto openSigner):
 * an Ed25519 key pair generated inside a PKCS#11 token (label PKCS11_KEY_LABEL), or for
 * development a 0600 PKCS#8 file (signingKeyPath). Created on first start only when
 * `createIfMissing`; `beforeCreate` may refuse (see SigningKeyHolder).
 */
export async function openCheckpointKey(
  env: Env,
  options: { createIfMissing: boolean; beforeCreate?: (where: string) => Promise<void> },
): Promise<CheckpointKey> {
  const signer = await openSigner(env, { localPath: signingKeyPath(env), ...options });
  const keyName = env.AUDIT_LOG_ORIGIN;
  return {
    signer,
    keyName,
    keyId: ed25519KeyId(keyName, signer.publicKey).toString('hex'),
    verifierKey: encodeVerifierKey(keyName, signer.publicKey),
  };
}

/**
 * The log's checkpoint signing key, created only while no checkpoint is signed yet. A new key
 * would sign the next checkpoints under another identity: auditors holding the old public key
 * could no longer verify them, and a log swapped under a fresh key would look just as valid.
 * The service (SigningKeyHolder) and `pnpm audit:log-key` both open it this way.
 */
export function openOrCreateCheckpointKey(env: Env, pool: Pool): Promise<CheckpointKey> {
  const beforeCreate = refuseNewKeyWhileInUse(
    () => LogRepository.asWriterRole(pool, (db) => LogRepository.checkpointCount(db)),
    'checkpoints signed with it',
  );
  return openCheckpointKey(env, { createIfMissing: true, beforeCreate });
}
