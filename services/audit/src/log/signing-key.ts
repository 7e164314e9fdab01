import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { AppError } from '@context-gateway/errors';
import { ed25519KeyId } from '@context-gateway/merkle-log';

import type { Env } from '../env.js';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The signed-note key name: the log's origin. */
  keyName: string;
  /** Hex of the C2SP key id (first 4 bytes of SHA-256(name, 0x01, key)), stored per checkpoint. */
  keyId: string;
}

/**
 * The checkpoint signing key: an Ed25519 private key (PKCS#8 PEM) in its own 0600 file next
 * to the master keyring (MASTER_KEY_FILE's folder), created on first start. A separate file
 * rather than a KEK in the keyring, because the KeyProvider never hands keys out (it only
 * wraps and unwraps) and signing needs the key itself; a KMS/Vault provider would sign
 * remotely instead (Vault transit/sign, KMS Sign with Ed25519).
 */
/** Where the key lives: AUDIT_SIGNING_KEY_FILE, or `audit-signing.key` next to the master keyring. */
export function signingKeyPath(env: Pick<Env, 'AUDIT_SIGNING_KEY_FILE' | 'MASTER_KEY_FILE'>): string {
  return resolve(env.AUDIT_SIGNING_KEY_FILE ?? join(dirname(env.MASTER_KEY_FILE), 'audit-signing.key'));
}

export async function loadOrCreateSigningKey(
  path: string,
  keyName: string,
  options: {
    create?: boolean;
    /** Asked before a new key is generated; throws to refuse (see SigningKeyHolder: not while checkpoints exist). */
    beforeCreate?: (path: string) => Promise<void>;
  } = {},
): Promise<SigningKey> {
  let pem: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0)
      throw new AppError('key_file_insecure', `${path} is readable by group or others; chmod 600 it`);
    pem = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (error instanceof AppError) throw error;
      throw new AppError('key_file_invalid', `cannot read the audit signing key ${path}`, [], { cause: error });
    }
    if (options.create === false)
      throw new AppError('key_file_invalid', `the audit signing key ${path} does not exist`);
    await options.beforeCreate?.(path);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const generated = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    try {
      // O_EXCL: two instances starting together create one key, the other reads it.
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(generated);
      await handle.sync();
      await handle.close();
      pem = generated;
    } catch (createError) {
      if ((createError as NodeJS.ErrnoException).code !== 'EEXIST') throw createError;
      pem = await readFile(path, 'utf8');
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new AppError('key_file_invalid', `${path} is not a PEM private key`, [], { cause: error });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new AppError('key_file_invalid', `${path} is not an Ed25519 key`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyName, keyId: ed25519KeyId(keyName, publicKey).toString('hex') };
}
