import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';

import {
  type ClosableKeyProvider,
  DataKeyStore,
  type EncryptionContext,
  EnvelopeCipher,
  type KeyOperationObserver,
  type keyStoreEnvShape,
  openKeyProvider,
  refuseNewKeyWhileInUse,
  WrappedKey,
} from '@context-gateway/crypto';

import type { Env } from '../env.js';

/** What a connection's credential holds; serialized to JSON and encrypted as a whole. */
export interface Credential {
  /** OAuth access token, or the API key a person pasted. */
  accessToken: string;
  refreshToken?: string;
  tokenType: string;
  /** Epoch ms; absent when the source gave no lifetime. */
  expiresAt?: number;
  /** The source scopes the source says the token carries. */
  scope?: string;
  /**
   * The RFC 8707 resource the token was issued for (a remote MCP server's own OAuth): a
   * token for another resource than the server's current one is not used.
   */
  resource?: string;
}

/** What the database keeps: the ciphertext and the id of its data key (the key itself is not in the database). */
export interface SealedCredential {
  dataKeyId: string;
  ciphertext: Buffer;
}

export interface ConnectionOwner {
  orgId: string;
  userId: string;
  connectionId: string;
}

type VaultEnv = Pick<
  Env,
  | 'MASTER_KEY_FILE'
  | 'KEYRING_FILE'
  | 'DATA_KEY_DIR'
  | 'MASTER_KEY_CREATE_IF_MISSING'
  | keyof ReturnType<typeof keyStoreEnvShape>
>;

/**
 * The credential vault: a data key per connection, wrapped by this service's own KEK (the
 * key provider: a local keyring or a key in a PKCS#11 token) with (org, user, connection)
 * bound in, and the credential AES-256-GCM under that data key with (org, user, connection,
 * purpose) as associated data. A ciphertext or wrapped key copied onto another connection's
 * row fails to open.
 *
 * The wrapped data keys live in a DataKeyStore (files outside the database), and the row
 * holds only their id: deleting a connection deletes its key file, so a database backup
 * taken before the deletion holds a ciphertext nothing can open any more.
 */
export class CredentialVault {
  private constructor(
    private readonly cipher: EnvelopeCipher,
    private readonly provider: ClosableKeyProvider,
    private readonly store: DataKeyStore,
  ) {}

  /**
   * `countSealed`: how many credentials the database holds sealed (a fresh KEK is refused while any do).
   * `observer`: told every key-provider call's latency and outcome (the key-store metrics).
   */
  static async open(
    env: VaultEnv,
    countSealed: () => Promise<number>,
    observer?: KeyOperationObserver,
  ): Promise<CredentialVault> {
    const keyDir = dirname(resolve(env.MASTER_KEY_FILE));
    const provider = await openKeyProvider(env, {
      localPath: resolve(env.KEYRING_FILE ?? join(keyDir, 'connection-broker.keyring')),
      adoptLocalFrom: resolve(env.MASTER_KEY_FILE),
      createIfMissing: env.MASTER_KEY_CREATE_IF_MISSING,
      beforeCreate: refuseNewKeyWhileInUse(countSealed, 'source credentials sealed under it'),
    });
    const store = await DataKeyStore.open(resolve(env.DATA_KEY_DIR ?? join(keyDir, 'connection-broker-data-keys')));
    return new CredentialVault(new EnvelopeCipher(provider, { cache: { ttlMs: 60_000 }, observer }), provider, store);
  }

  /** Seals with a fresh data key (a new connection, or a reconnect replacing the credential). */
  async sealNew(owner: ConnectionOwner, credential: Credential): Promise<SealedCredential> {
    const { key, wrapped } = await this.cipher.generateDataKey(wrapContext(owner));
    try {
      const dataKeyId = randomUUID();
      const ciphertext = key.encrypt(Buffer.from(JSON.stringify(credential)), dataAad(owner));
      // Stored before the row that names it commits; a failed commit leaves an unused key file, never a row without its key.
      await this.store.put(dataKeyId, wrapped);
      return { dataKeyId, ciphertext };
    } finally {
      key.destroy();
    }
  }

  /** Re-seals under the connection's existing data key (a refresh). */
  async reseal(owner: ConnectionOwner, dataKeyId: string, credential: Credential): Promise<Buffer> {
    const key = await this.cipher.openDataKey(await this.store.get(dataKeyId), wrapContext(owner));
    return key.encrypt(Buffer.from(JSON.stringify(credential)), dataAad(owner));
  }

  async open(owner: ConnectionOwner, sealed: { dataKeyId: string; ciphertext: Uint8Array }): Promise<Credential> {
    const key = await this.cipher.openDataKey(await this.store.get(sealed.dataKeyId), wrapContext(owner));
    return JSON.parse(key.decrypt(sealed.ciphertext, dataAad(owner)).toString('utf8')) as Credential;
  }

  /** Crypto-shredding: the key file is deleted and this process's cached copy zeroed. */
  async destroy(owner: ConnectionOwner, dataKeyId: string): Promise<void> {
    const wrapped = await this.store.get(dataKeyId).catch(() => undefined);
    if (wrapped) this.cipher.shred(wrapped, wrapContext(owner));
    await this.store.destroy(dataKeyId);
  }

  /**
   * Moves a wrapped key that an older version kept in the database into the key store;
   * returns its new id. The caller swaps the column for the id, or `discard`s it if another
   * replica moved that row first.
   */
  async storeLegacyKey(wrappedDataKey: Uint8Array): Promise<string> {
    const dataKeyId = randomUUID();
    await this.store.put(dataKeyId, WrappedKey.decode(wrappedDataKey));
    return dataKeyId;
  }

  /**
   * A small secret of this service's own (a webhook signing key) wrapped under its KEK, bound to
   * `context`: stored in the database, it opens only through the key provider and only for
   * the same context.
   */
  async sealSecret(secret: Uint8Array, context: EncryptionContext): Promise<Buffer> {
    return (await this.provider.wrapKey(secret, context)).encode();
  }

  openSecret(sealedSecret: Uint8Array, context: EncryptionContext): Promise<Buffer> {
    return this.provider.unwrapKey(WrappedKey.decode(sealedSecret), context);
  }

  async discard(dataKeyId: string): Promise<void> {
    await this.store.destroy(dataKeyId);
  }

  close(): void {
    this.cipher.close();
    this.provider.close();
  }
}

function wrapContext(owner: ConnectionOwner): EncryptionContext {
  return { org: owner.orgId, user: owner.userId, connection: owner.connectionId };
}

function dataAad(owner: ConnectionOwner): EncryptionContext {
  return { org: owner.orgId, user: owner.userId, connection: owner.connectionId, purpose: 'source-credential' };
}
