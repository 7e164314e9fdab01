import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';

import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';

import { DataKey } from './data-key.js';
import type { EncryptionContext } from './encryption-context.js';
import type { KeyProvider } from './key-provider.js';
import { createKeyringExclusive, type Keyring, readKeyring, replaceKeyring } from './keyring-file.js';
import { wrapAad } from './wrap-aad.js';
import { WrappedKey } from './wrapped-key.js';

export interface LocalKeyProviderOptions {
  /** Keyring file; must be mode 0600 (or stricter) and owned by the service's user. */
  path: string;
  /** Create a fresh keyring (one KEK, version 1) when nothing exists at `path`. */
  createIfMissing?: boolean;
  /**
   * Asked before a fresh keyring is created; throws to refuse. Services pass a check that
   * their database holds nothing wrapped by a keyring: a missing file next to existing
   * wrapped keys means a volume that was not mounted or a mistyped path, and a fresh keyring
   * would leave every stored secret unreadable and put new ones under another key.
   */
  beforeCreate?: (path: string) => Promise<void>;
  /** Stamps each KEK's `createdAt`, from which key age (and so rotation) is judged. */
  clock?: Clock;
  /**
   * A keyring several services used to share (before each had its own): when nothing exists
   * at `path` but this file does, it is copied to `path` first, so keys wrapped under it keep
   * opening. From then on each copy rotates on its own (docs/operations.md, "Keys").
   */
  adoptFrom?: string;
}

const KEK_BYTES = 32;

/**
 * Default KeyProvider: KEKs in a local JSON keyring file. It protects data keys from
 * anyone who can read the database but not this file — backups, replicas, SQL access.
 * It does NOT protect against someone with the host's filesystem; that is what moving
 * the KEK into Vault transit or a KMS (same interface) buys.
 *
 * Wrapping is AES-256-GCM under the KEK, with the KEK version and the owner's context as
 * associated data (so a wrapped key pasted onto another connection's row won't unwrap).
 *
 * Rotation (`rotate`) adds a version and makes it current; old versions keep unwrapping
 * until `removeVersion` — run a rewrap pass over stored keys first. Several processes may
 * share the file: one that meets a version it does not know re-reads the file once.
 * Writes (rotate/remove) are an operator action; run them from one process at a time.
 */
export class LocalKeyProvider implements KeyProvider {
  readonly id = 'local';
  // The KEK is used exactly like a data key (AES-256-GCM, versioned format), so reuse it.
  #keks = new Map<number, DataKey>();
  #current = 0;
  #reloading: Promise<void> | undefined;
  #closed = false;
  #writing: Promise<unknown> = Promise.resolve();

  readonly #clock: Clock;

  private constructor(
    readonly path: string,
    clock: Clock,
  ) {
    this.#clock = clock;
  }

  static async open(options: LocalKeyProviderOptions): Promise<LocalKeyProvider> {
    const provider = new LocalKeyProvider(options.path, options.clock ?? systemClock);
    if (options.adoptFrom && !(await exists(options.path)) && (await exists(options.adoptFrom))) {
      const shared = await readKeyring(options.adoptFrom);
      try {
        await createKeyringExclusive(options.path, shared);
      } catch (cause) {
        throw writeFailed(options.path, cause);
      } finally {
        for (const k of shared.keys) k.key.fill(0);
      }
    }
    if (options.createIfMissing && !(await exists(options.path))) {
      await options.beforeCreate?.(options.path);
      const fresh: Keyring = {
        current: 1,
        keys: [{ version: 1, key: randomBytes(KEK_BYTES), createdAt: provider.#now() }],
      };
      try {
        // Loses the race harmlessly if the file exists; the load below reads whichever won.
        await createKeyringExclusive(options.path, fresh);
      } catch (cause) {
        throw writeFailed(options.path, cause);
      } finally {
        fresh.keys[0]?.key.fill(0);
      }
    }
    provider.#install(await readKeyring(options.path));
    return provider;
  }

  currentVersion(): Promise<number> {
    return Promise.resolve(this.#current);
  }

  /** Versions this process can unwrap, oldest first. */
  versions(): number[] {
    return [...this.#keks.keys()].sort((a, b) => a - b);
  }

  wrapKey(plaintextKey: Uint8Array, context: EncryptionContext): Promise<WrappedKey> {
    // Synchronous work; the executor turns a throw into a rejection, as for the other methods.
    return new Promise((resolve) => {
      const version = this.#current;
      const kek = this.#keks.get(version);
      if (!kek) throw new AppError('key_not_found');
      resolve(new WrappedKey(this.id, version, kek.encrypt(plaintextKey, wrapAad(version, context))));
    });
  }

  async unwrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    if (wrapped.providerId !== this.id) {
      throw new AppError('key_not_found', `Key was wrapped by provider "${wrapped.providerId}"`);
    }
    if (!this.#keks.has(wrapped.kekVersion)) await this.reload();
    // Look up and decrypt in one synchronous step: a concurrent reload swaps (and zeroes)
    // the KEK objects, so one must not be held across an await.
    const kek = this.#keks.get(wrapped.kekVersion);
    if (!kek) throw new AppError('key_not_found', `KEK version ${wrapped.kekVersion} is not in the keyring`);
    return kek.decrypt(wrapped.ciphertext, wrapAad(wrapped.kekVersion, context));
  }

  async rewrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    const plaintext = await this.unwrapKey(wrapped, context);
    try {
      return await this.wrapKey(plaintext, context);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Adds a new KEK version and makes it current; returns that version. */
  rotate(): Promise<number> {
    return this.#update((keyring) => {
      const version = Math.max(...keyring.keys.map((k) => k.version)) + 1;
      keyring.keys.push({ version, key: randomBytes(KEK_BYTES), createdAt: this.#now() });
      keyring.current = version;
      return version;
    });
  }

  /**
   * Deletes a KEK version: every key still wrapped under it becomes unrecoverable
   * (crypto-shredding at KEK scale). Refuses the current version.
   */
  removeVersion(version: number): Promise<void> {
    return this.#update((keyring) => {
      if (version === keyring.current) {
        throw new AppError('conflict', `KEK version ${version} is current; rotate before removing it`);
      }
      const index = keyring.keys.findIndex((k) => k.version === version);
      if (index < 0) throw new AppError('key_not_found', `KEK version ${version} does not exist`);
      keyring.keys[index]?.key.fill(0);
      keyring.keys.splice(index, 1);
    });
  }

  /** Re-reads the file, e.g. after another process rotated. */
  async reload(): Promise<void> {
    this.#reloading ??= readKeyring(this.path)
      .then((keyring) => this.#install(keyring))
      .finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  /** Zeroes every KEK held in memory; the provider is unusable afterwards. */
  close(): void {
    this.#closed = true;
    for (const kek of this.#keks.values()) kek.destroy();
    this.#keks.clear();
    this.#current = 0;
  }

  /** Read-modify-write from the file (not memory), serialized within this process. */
  #update<T>(change: (keyring: Keyring) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const keyring = await readKeyring(this.path);
      const result = change(keyring);
      try {
        await replaceKeyring(this.path, keyring);
      } catch (cause) {
        throw writeFailed(this.path, cause);
      }
      this.#install(keyring);
      return result;
    };
    const next = this.#writing.then(run, run);
    this.#writing = next.catch(() => undefined);
    return next;
  }

  #now(): string {
    return this.#clock.date().toISOString();
  }

  #install(keyring: Keyring): void {
    // Closed means closed: a reload (an unwrap meeting an unknown version) must not bring the KEKs back.
    if (this.#closed) {
      for (const k of keyring.keys) k.key.fill(0);
      return;
    }
    const old = this.#keks;
    this.#keks = new Map(keyring.keys.map((k) => [k.version, new DataKey(k.key)]));
    this.#current = keyring.current;
    for (const kek of old.values()) kek.destroy();
  }
}

function writeFailed(path: string, cause: unknown): AppError {
  if (cause instanceof AppError) return cause;
  const code = (cause as NodeJS.ErrnoException).code ?? 'unknown';
  return new AppError('key_file_invalid', `Key file ${path}: cannot be written (${code})`, [], { cause });
}

/** Only "no such file" is missing; a file that is there but unreadable must not look like a first start. */
async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw new AppError('key_file_invalid', `Key file ${path}: cannot be reached (${error.code ?? 'unknown'})`, [], {
        cause: error,
      });
    },
  );
}

/**
 * The usual `beforeCreate`: refuses to make a new key while `countInUse()` says the
 * database holds things only the missing one can open or vouch for (`what` names them in
 * the error, e.g. "connection data keys wrapped by it").
 */
export function refuseNewKeyWhileInUse(
  countInUse: () => Promise<number>,
  what: string,
): (path: string) => Promise<void> {
  return async (path) => {
    const count = await countInUse();
    if (count > 0) {
      throw new AppError(
        'key_file_missing',
        `Key file ${path} does not exist, but ${count} ${what} are stored: restore the file (a new key would leave them unusable)`,
      );
    }
  };
}
