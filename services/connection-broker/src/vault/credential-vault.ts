import {
  type EncryptionContext,
  EnvelopeCipher,
  type KeyOperationObserver,
  LocalKeyProvider,
  refuseNewKeyWhileInUse,
  WrappedKey,
} from '@context-gateway/crypto';

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
}

export interface SealedCredential {
  wrappedDataKey: Buffer;
  ciphertext: Buffer;
}

export interface ConnectionOwner {
  orgId: string;
  userId: string;
  connectionId: string;
}

/**
 * The credential vault: a data key per connection, wrapped by the key provider's KEK with
 * (org, user, connection) bound in, and the credential AES-256-GCM under that data key
 * with (org, user, connection, purpose) as associated data. A ciphertext or wrapped key
 * copied onto another connection's row fails to open.
 */
export class CredentialVault {
  constructor(private readonly cipher: EnvelopeCipher) {}

  /**
   * `countSealed`: how many credentials the database holds sealed (a fresh keyring is refused while any do).
   * `observer`: told every key-provider call's latency and outcome (the key-store metrics).
   */
  static async open(
    keyFile: string,
    createIfMissing: boolean,
    countSealed: () => Promise<number>,
    observer?: KeyOperationObserver,
  ): Promise<CredentialVault> {
    const provider = await LocalKeyProvider.open({
      path: keyFile,
      createIfMissing,
      beforeCreate: refuseNewKeyWhileInUse(countSealed, 'source credentials sealed under it'),
    });
    return new CredentialVault(new EnvelopeCipher(provider, { cache: { ttlMs: 60_000 }, observer }));
  }

  /** Seals with a fresh data key (a new connection, or a reconnect replacing the credential). */
  async sealNew(owner: ConnectionOwner, credential: Credential): Promise<SealedCredential> {
    const { key, wrapped } = await this.cipher.generateDataKey(wrapContext(owner));
    try {
      return {
        wrappedDataKey: wrapped.encode(),
        ciphertext: key.encrypt(Buffer.from(JSON.stringify(credential)), dataAad(owner)),
      };
    } finally {
      key.destroy();
    }
  }

  /** Re-seals under the connection's existing data key (a refresh). */
  async reseal(owner: ConnectionOwner, wrappedDataKey: Uint8Array, credential: Credential): Promise<Buffer> {
    const key = await this.cipher.openDataKey(WrappedKey.decode(wrappedDataKey), wrapContext(owner));
    return key.encrypt(Buffer.from(JSON.stringify(credential)), dataAad(owner));
  }

  async open(
    owner: ConnectionOwner,
    sealed: { wrappedDataKey: Uint8Array; ciphertext: Uint8Array },
  ): Promise<Credential> {
    const key = await this.cipher.openDataKey(WrappedKey.decode(sealed.wrappedDataKey), wrapContext(owner));
    return JSON.parse(key.decrypt(sealed.ciphertext, dataAad(owner)).toString('utf8')) as Credential;
  }

  /** In-memory half of crypto-shredding; the caller nulls the stored wrapped key. */
  shred(owner: ConnectionOwner, wrappedDataKey: Uint8Array): void {
    this.cipher.shred(WrappedKey.decode(wrappedDataKey), wrapContext(owner));
  }

  close(): void {
    this.cipher.close();
  }
}

function wrapContext(owner: ConnectionOwner): EncryptionContext {
  return { org: owner.orgId, user: owner.userId, connection: owner.connectionId };
}

function dataAad(owner: ConnectionOwner): EncryptionContext {
  return { org: owner.orgId, user: owner.userId, connection: owner.connectionId, purpose: 'source-credential' };
}
