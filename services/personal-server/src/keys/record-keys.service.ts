import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';

import type { Clock } from '@context-gateway/clock';
import {
  type ClosableKeyProvider,
  type DataKey,
  DataKeyStore,
  type EncryptionContext,
  EnvelopeCipher,
  type KeyOperationObserver,
  type keyStoreEnvShape,
  openKeyProvider,
  refuseNewKeyWhileInUse,
  type WrappedKey,
} from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';

import type { Env } from '../env.js';

/** Whose data key it is: bound into the wrap, so a key file copied to another connection won't open. */
export interface KeyOwner {
  personalServerId: string;
  connectionId: string;
  userId: string;
}

/** Whose server key it is (a Personal Server's own key, not a connection's). */
export interface ServerKeyOwner {
  personalServerId: string;
  userId: string;
}

function wrapContext(owner: KeyOwner): EncryptionContext {
  return {
    purpose: 'ps.records',
    personalServer: owner.personalServerId,
    connection: owner.connectionId,
    user: owner.userId,
  };
}

/** Another purpose than any connection's key: a server key never opens as one, nor the reverse. */
function serverWrapContext(owner: ServerKeyOwner): EncryptionContext {
  return { purpose: 'ps.server', personalServer: owner.personalServerId, user: owner.userId };
}

/**
 * Per-connection data keys: created with the connection, opened (cached) on every read
 * and write, destroyed with the connection. The hot path touches neither the disk nor the
 * provider: the wrapped key and the unwrapped key are both held in memory after first use.
 */
export class RecordKeys {
  /**
   * keyId → wrapped key, so the hot path does not read the key file per query. Bounded
   * (least recently used goes first): a shard serves far more connections over its life
   * than it needs in memory, and a miss costs one small file read.
   */
  readonly #wrapped = new Map<string, WrappedKey>();
  static readonly MAX_WRAPPED_KEYS = 10_000;

  private constructor(
    private readonly cipher: EnvelopeCipher,
    private readonly provider: ClosableKeyProvider,
    private readonly store: DataKeyStore,
  ) {}

  /**
   * `countWrapped`: how many data keys the database says exist (a fresh keyring is refused while any do).
   * `clock`: when a cached data key expires, and the keyring's key timestamps.
   * `observer`: told every key-provider call's latency and outcome (the key-store metrics).
   */
  static async open(
    env: Pick<
      Env,
      | 'MASTER_KEY_FILE'
      | 'KEYRING_FILE'
      | 'MASTER_KEY_CREATE_IF_MISSING'
      | 'DATA_KEY_DIR'
      | 'DATA_KEY_CACHE_TTL_MS'
      | keyof ReturnType<typeof keyStoreEnvShape>
    >,
    countWrapped: () => Promise<number>,
    clock: Clock,
    observer?: KeyOperationObserver,
  ): Promise<RecordKeys> {
    const keyDir = dirname(resolve(env.MASTER_KEY_FILE));
    const provider = await openKeyProvider(env, {
      localPath: resolve(env.KEYRING_FILE ?? join(keyDir, 'personal-server.keyring')),
      adoptLocalFrom: resolve(env.MASTER_KEY_FILE),
      createIfMissing: env.MASTER_KEY_CREATE_IF_MISSING,
      beforeCreate: refuseNewKeyWhileInUse(countWrapped, 'connection data keys wrapped by it'),
      clock,
    });
    const store = await DataKeyStore.open(resolve(env.DATA_KEY_DIR ?? join(keyDir, 'data-keys')));
    return new RecordKeys(
      new EnvelopeCipher(provider, { cache: { ttlMs: env.DATA_KEY_CACHE_TTL_MS, clock }, observer }),
      provider,
      store,
    );
  }

  /** A fresh data key for a new connection; returns the id to record in the connections row. */
  async create(owner: KeyOwner): Promise<string> {
    const keyId = randomUUID();
    const { key, wrapped } = await this.cipher.generateDataKey(wrapContext(owner));
    key.destroy(); // opened again (and cached) on first use
    await this.store.put(keyId, wrapped);
    return keyId;
  }

  /**
   * A Personal Server's own key (it seals the server's pinned passkeys). Its id is the
   * person's user id, so whether one exists is known from the key files alone, whatever the
   * database says; made once (a second attempt fails: the file is created exclusively).
   */
  async createServerKey(owner: ServerKeyOwner): Promise<void> {
    const { key, wrapped } = await this.cipher.generateDataKey(serverWrapContext(owner));
    key.destroy(); // opened again (and cached) on first use
    await this.store.put(owner.userId, wrapped);
  }

  /** Whether the person's server key exists (their passkeys were pinned once). */
  async hasServerKey(userId: string): Promise<boolean> {
    try {
      await this.store.get(userId);
      return true;
    } catch (error) {
      if (error instanceof AppError && error.code === 'key_destroyed') return false;
      throw error;
    }
  }

  /** Undoes createServerKey when what it was made for was not committed. */
  async destroyServerKey(owner: ServerKeyOwner): Promise<void> {
    await this.destroyWith(owner.userId, serverWrapContext(owner));
  }

  /** The connection's data key (shared, cached): use it now, don't keep it. */
  open(keyId: string, owner: KeyOwner): Promise<DataKey> {
    return this.#open(keyId, wrapContext(owner));
  }

  /** A Personal Server's own key (shared, cached): use it now, don't keep it. */
  openServerKey(owner: ServerKeyOwner): Promise<DataKey> {
    return this.#open(owner.userId, serverWrapContext(owner));
  }

  async #open(keyId: string, context: EncryptionContext): Promise<DataKey> {
    let wrapped = this.#wrapped.get(keyId);
    if (wrapped) {
      // Map order is recency order: move this key to the end.
      this.#wrapped.delete(keyId);
    } else {
      wrapped = await this.store.get(keyId);
      if (this.#wrapped.size >= RecordKeys.MAX_WRAPPED_KEYS) {
        // Map order is recency order: the first key is the least recently used.
        const oldest = this.#wrapped.keys().next();
        if (!oldest.done) this.#wrapped.delete(oldest.value);
      }
    }
    this.#wrapped.set(keyId, wrapped);
    return this.cipher.openDataKey(wrapped, context);
  }

  /** Crypto-shredding: the key file is deleted and this process's copies are zeroed. */
  destroy(keyId: string, owner: KeyOwner): Promise<void> {
    return this.destroyWith(keyId, wrapContext(owner));
  }

  private async destroyWith(keyId: string, context: EncryptionContext): Promise<void> {
    const wrapped = this.#wrapped.get(keyId) ?? (await this.store.get(keyId).catch(() => undefined));
    this.#wrapped.delete(keyId);
    if (wrapped) this.cipher.shred(wrapped, context);
    await this.store.destroy(keyId);
  }

  close(): void {
    this.cipher.close();
    this.provider.close();
    this.#wrapped.clear();
  }
}
