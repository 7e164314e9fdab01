import { randomBytes } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type * as Graphene from 'graphene-pk11';

import type { EncryptionContext } from '../encryption-context.js';
import type { KeyProvider } from '../key-provider.js';
import { wrapAad } from '../wrap-aad.js';
import { WrappedKey } from '../wrapped-key.js';
import { errorText, type Pkcs11Config, Pkcs11Token } from './pkcs11-token.js';

export interface Pkcs11KeyProviderOptions extends Pkcs11Config {
  /** KEK versions are AES keys labelled `<keyLabel>.v<N>` in the token; the highest N is current. */
  keyLabel: string;
  /** Generate `<keyLabel>.v1` in the token when no version exists (first start). */
  createIfMissing?: boolean;
  /** Asked before that first KEK is generated; throws to refuse (see refuseNewKeyWhileInUse). */
  beforeCreate?: (where: string) => Promise<void>;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEK_BYTES = 32;
const VERSION_SUFFIX = /\.v([1-9][0-9]{0,9})$/;

/**
 * KeyProvider over PKCS#11: the KEK is a non-extractable, sensitive AES-256 key inside the
 * token (an HSM, SoftHSM2, or a cloud KMS's PKCS#11 front end), and wrapping is AES-GCM
 * computed by the token, with the KEK version and the owner's context as associated data.
 * The KEK never exists in this process's memory; whoever copies the database and this
 * host's files still cannot unwrap a data key without the token and its PIN.
 *
 * Versions are labels: `<keyLabel>.v1`, `.v2`, …; `rotate` generates the next one in the
 * token, and retiring a version is destroying that object (after a rewrap pass).
 * Wrapped form (opaque to callers): `iv (12) | ciphertext | tag (16)`.
 *
 * `rewrapKey` decrypts and re-encrypts through this process (zeroing the plaintext at
 * once): PKCS#11 has no portable "re-encrypt" for AES-GCM, and SoftHSM2's C_WrapKey does
 * not take GCM. Every read unwraps into this process anyway, so nothing new is exposed.
 *
 * Calls are synchronous in the binding and fast (microseconds on SoftHSM2); one session,
 * used by one event loop, needs no locking.
 */
export class Pkcs11KeyProvider implements KeyProvider {
  readonly id = 'pkcs11';
  #keys = new Map<number, Graphene.SecretKey>();
  #current = 0;

  private constructor(
    private readonly token: Pkcs11Token,
    readonly keyLabel: string,
  ) {}

  static async open(options: Pkcs11KeyProviderOptions): Promise<Pkcs11KeyProvider> {
    const token = await Pkcs11Token.open(options);
    const provider = new Pkcs11KeyProvider(token, options.keyLabel);
    try {
      provider.#scan();
      if (provider.#current === 0) {
        const where = `token "${options.tokenLabel}", key "${options.keyLabel}.v1"`;
        if (!options.createIfMissing) {
          throw new AppError(
            'key_not_found',
            `No key labelled "${options.keyLabel}.v<N>" in the token "${options.tokenLabel}"; check PKCS11_KEY_LABEL, or create it (MASTER_KEY_CREATE_IF_MISSING=true on first start)`,
          );
        }
        await options.beforeCreate?.(where);
        provider.#generate(1);
        provider.#scan();
      }
    } catch (error) {
      token.close();
      throw error;
    }
    return provider;
  }

  currentVersion(): Promise<number> {
    return Promise.resolve(this.#current);
  }

  /** Versions present in the token, oldest first. */
  versions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  wrapKey(plaintextKey: Uint8Array, context: EncryptionContext): Promise<WrappedKey> {
    return new Promise((resolve) => {
      const version = this.#current;
      const kek = this.#keys.get(version);
      if (!kek) throw new AppError('key_not_found');
      const iv = randomBytes(IV_BYTES);
      const input = Buffer.from(plaintextKey);
      try {
        const sealed = this.#cipher('encrypt', kek, iv, wrapAad(version, context), input);
        resolve(new WrappedKey(this.id, version, Buffer.concat([iv, sealed])));
      } finally {
        input.fill(0);
      }
    });
  }

  unwrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    return new Promise((resolve) => {
      if (wrapped.providerId !== this.id) {
        throw new AppError('key_not_found', `Key was wrapped by provider "${wrapped.providerId}"`);
      }
      // Another process may have rotated since this one looked.
      if (!this.#keys.has(wrapped.kekVersion)) this.#scan();
      const kek = this.#keys.get(wrapped.kekVersion);
      if (!kek) {
        throw new AppError('key_not_found', `KEK "${this.keyLabel}.v${wrapped.kekVersion}" is not in the token`);
      }
      const bytes = Buffer.from(wrapped.ciphertext);
      if (bytes.length <= IV_BYTES + TAG_BYTES) throw new AppError('decryption_failed', 'Malformed wrapped key');
      const iv = bytes.subarray(0, IV_BYTES);
      resolve(this.#cipher('decrypt', kek, iv, wrapAad(wrapped.kekVersion, context), bytes.subarray(IV_BYTES)));
    });
  }

  async rewrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    const plaintext = await this.unwrapKey(wrapped, context);
    try {
      return await this.wrapKey(plaintext, context);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Generates the next KEK version in the token and makes it current; returns that version. */
  rotate(): Promise<number> {
    return new Promise((resolve) => {
      this.#scan();
      const version = this.#current + 1;
      this.#generate(version);
      this.#scan();
      resolve(version);
    });
  }

  /** Destroys a KEK version in the token: whatever is still wrapped under it is gone for good. Refuses the current one. */
  removeVersion(version: number): Promise<void> {
    return new Promise((resolve) => {
      this.#scan();
      if (version === this.#current) {
        throw new AppError('conflict', `KEK version ${version} is current; rotate before removing it`);
      }
      const kek = this.#keys.get(version);
      if (!kek) throw new AppError('key_not_found', `KEK version ${version} does not exist`);
      kek.destroy();
      this.#scan();
      resolve();
    });
  }

  close(): void {
    this.#keys.clear();
    this.#current = 0;
    this.token.close();
  }

  #scan(): void {
    const { ObjectClass, KeyType } = this.token.graphene;
    const keys = new Map<number, Graphene.SecretKey>();
    for (const object of this.token.find({ class: ObjectClass.SECRET_KEY, keyType: KeyType.AES })) {
      const key = object.toType<Graphene.SecretKey>();
      const label = key.label;
      if (!label.startsWith(`${this.keyLabel}.v`)) continue;
      const match = VERSION_SUFFIX.exec(label.slice(this.keyLabel.length));
      if (!match || label.length !== this.keyLabel.length + (match[0]?.length ?? 0)) continue;
      const version = Number(match[1]);
      if (keys.has(version)) {
        throw new AppError('key_not_found', `Two keys in the token are labelled "${label}"; remove one`);
      }
      keys.set(version, key);
    }
    this.#keys = keys;
    this.#current = Math.max(0, ...keys.keys());
  }

  #generate(version: number): void {
    const { KeyGenMechanism, ObjectClass, KeyType } = this.token.graphene;
    this.token.session.generateKey(KeyGenMechanism.AES, {
      class: ObjectClass.SECRET_KEY,
      keyType: KeyType.AES,
      label: `${this.keyLabel}.v${version}`,
      valueLen: KEK_BYTES,
      // A persistent, private object that never leaves the token in any form.
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      encrypt: true,
      decrypt: true,
      wrap: false,
      unwrap: false,
    });
  }

  /** One-shot AES-GCM in the token (CK_GCM_PARAMS as in PKCS#11 v2.40, which SoftHSM2 and current HSMs take). */
  #cipher(direction: 'encrypt' | 'decrypt', kek: Graphene.SecretKey, iv: Buffer, aad: Buffer, input: Buffer): Buffer {
    const { AesGcm240Params } = this.token.graphene;
    const mechanism = { name: 'AES_GCM', params: new AesGcm240Params(iv, aad, TAG_BYTES * 8) };
    const out = Buffer.alloc(direction === 'encrypt' ? input.length + TAG_BYTES : input.length);
    try {
      const result =
        direction === 'encrypt'
          ? this.token.session.createCipher(mechanism, kek).once(input, out)
          : this.token.session.createDecipher(mechanism, kek).once(input, out);
      const copy = Buffer.from(result);
      out.fill(0);
      return copy;
    } catch (cause) {
      out.fill(0);
      if (/HANDLE_INVALID/.test(errorText(cause))) {
        // Destroyed in the token by another process (a retired version): look again next time.
        this.#keys = new Map([...this.#keys].filter(([, key]) => key !== kek));
        throw new AppError('key_not_found', `A KEK "${this.keyLabel}.v<N>" is no longer in the token`, [], { cause });
      }
      if (direction === 'decrypt') {
        // A failed tag check: tampered, or another owner's context (SoftHSM2 reports it as a general error).
        throw new AppError('decryption_failed', 'Wrapped key did not authenticate', [], { cause });
      }
      throw new AppError('key_store_unavailable', `The token refused to encrypt (${errorText(cause)})`, [], { cause });
    }
  }
}
