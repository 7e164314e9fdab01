import { constants } from 'node:fs';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { AppError } from '@context-gateway/errors';

import { WrappedKey } from './wrapped-key.js';

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Where a service's wrapped data keys are kept (personal-server's record keys, the broker's
 * credential keys): one file per key in a 0700 directory, outside the database on purpose. The database holds ciphertext and a key id only, so
 * crypto-shredding is deleting one file: a database backup taken before the deletion has
 * no copy of the key and stays unreadable. (A wrapped key stored in the database would be
 * in that backup and still open with the KEK.) With Vault transit or a cloud KMS the same
 * role is a per-connection key there, deleted the same way.
 */
export class DataKeyStore {
  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<DataKeyStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new DataKeyStore(dir);
  }

  /** Stores a new key; never overwrites (key ids are random, a clash is a bug). Durable on return. */
  async put(keyId: string, wrapped: WrappedKey): Promise<void> {
    const handle = await open(this.path(keyId), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await handle.writeFile(wrapped.toString());
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.syncDir();
  }

  /** The wrapped key, or AppError('key_destroyed') when it was shredded (or never existed here). */
  async get(keyId: string): Promise<WrappedKey> {
    let text: string;
    try {
      text = await readFile(this.path(keyId), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new AppError('key_destroyed', 'The data key of this connection was destroyed');
      throw error;
    }
    return WrappedKey.decode(text.trim());
  }

  /** Crypto-shredding, durable half: the key file is gone (and the directory entry synced). */
  async destroy(keyId: string): Promise<boolean> {
    try {
      await unlink(this.path(keyId));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    await this.syncDir();
    return true;
  }

  private path(keyId: string): string {
    // The id comes from our own table, but a path is built from it: refuse anything odd.
    if (!KEY_ID.test(keyId)) throw new AppError('internal', 'malformed data key id');
    return join(this.dir, `${keyId}.key`);
  }

  private async syncDir(): Promise<void> {
    const handle = await open(this.dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
