import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { AppError } from '@context-gateway/errors';

/**
 * An Ed25519 signing key that may live outside this process (an HSM over PKCS#11) or in a
 * local file. Deliberately small: verifiers pin `publicKey`; signers only ever call `sign`.
 */
export interface Signer {
  /** The Ed25519 public key (a Node KeyObject), to publish and pin. */
  readonly publicKey: KeyObject;
  /** A 64-byte Ed25519 signature (RFC 8032, pure Ed25519) over `message`. */
  sign(message: Uint8Array): Promise<Buffer>;
  /** Lets go of the key (and the token session); the signer is unusable afterwards. */
  close(): void;
}

export interface LocalFileSignerOptions {
  /** PKCS#8 PEM file, mode 0600 or stricter. */
  path: string;
  /** Generate a key when nothing exists at `path` (first start). */
  createIfMissing?: boolean;
  /** Asked before a new key is generated; throws to refuse (e.g. while signatures by the old one are stored). */
  beforeCreate?: (where: string) => Promise<void>;
}

/**
 * Signer over an Ed25519 private key in a local 0600 PKCS#8 PEM file: for development and
 * for deployments without a key store. Whoever can read the file can sign as this service.
 */
export class LocalFileSigner implements Signer {
  #privateKey: KeyObject | undefined;

  private constructor(
    privateKey: KeyObject,
    readonly publicKey: KeyObject,
  ) {
    this.#privateKey = privateKey;
  }

  static async open(options: LocalFileSignerOptions): Promise<LocalFileSigner> {
    const pem = await readOrCreatePem(options);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(pem);
    } catch (cause) {
      throw new AppError('key_file_invalid', `Key file ${options.path}: not a PEM private key`, [], { cause });
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new AppError('key_file_invalid', `Key file ${options.path}: not an Ed25519 key`);
    }
    return new LocalFileSigner(privateKey, createPublicKey(privateKey));
  }

  sign(message: Uint8Array): Promise<Buffer> {
    return new Promise((resolve) => {
      if (!this.#privateKey) throw new AppError('internal', 'signer is closed');
      resolve(sign(null, message, this.#privateKey));
    });
  }

  close(): void {
    this.#privateKey = undefined;
  }
}

async function readOrCreatePem(options: LocalFileSignerOptions): Promise<string> {
  const { path } = options;
  try {
    // Permissions checked on the open descriptor, so the file cannot be swapped in between.
    const handle = await open(path, constants.O_RDONLY);
    try {
      const stat = await handle.stat();
      if ((stat.mode & 0o077) !== 0) {
        throw new AppError(
          'key_file_insecure',
          `Key file ${path} is accessible to group or others; it must be mode 0600 (chmod 600)`,
        );
      }
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof AppError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      throw new AppError('key_file_invalid', `Key file ${path}: cannot be opened (${code ?? 'unknown'})`, [], {
        cause: error,
      });
    }
  }
  if (!options.createIfMissing) throw new AppError('key_file_invalid', `Key file ${path}: does not exist`);
  await options.beforeCreate?.(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    // O_EXCL: two instances starting together end up with one key; the loser reads the winner's.
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return pem;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFile(path, 'utf8');
  }
}
