import { createPublicKey, type KeyObject } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type * as Graphene from 'graphene-pk11';

import type { Signer } from '../signer.js';
import { errorText, type Pkcs11Config, Pkcs11Token } from './pkcs11-token.js';

export interface Pkcs11SignerOptions extends Pkcs11Config {
  /** CKA_LABEL of the Ed25519 key pair (private and public object share it). */
  keyLabel: string;
  /** Generate the key pair in the token when none has that label (first start). */
  createIfMissing?: boolean;
  /** Asked before a new key pair is generated; throws to refuse. */
  beforeCreate?: (where: string) => Promise<void>;
}

// Constants of PKCS#11 v3.0 that graphene-pk11 2.3 has no names for.
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
/** DER of the Ed25519 OID 1.3.101.112, the curve parameter (CKA_EC_PARAMS) of the key pair. */
const ED25519_PARAMS = Buffer.from('06032b6570', 'hex');
/** SubjectPublicKeyInfo prefix of a raw 32-byte Ed25519 key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Ed25519 signing inside a PKCS#11 token (CKM_EDDSA): the private key is generated there,
 * sensitive and non-extractable, so no file this service can read holds it — a copy of
 * the host and the database cannot forge a signature without the token and its PIN.
 */
export class Pkcs11Signer implements Signer {
  #privateKey: Graphene.PrivateKey | undefined;

  private constructor(
    private readonly token: Pkcs11Token,
    privateKey: Graphene.PrivateKey,
    readonly publicKey: KeyObject,
  ) {
    this.#privateKey = privateKey;
  }

  static async open(options: Pkcs11SignerOptions): Promise<Pkcs11Signer> {
    const token = await Pkcs11Token.open(options);
    try {
      let pair = findPair(token, options.keyLabel);
      if (!pair) {
        if (!options.createIfMissing) {
          throw new AppError(
            'key_not_found',
            `No Ed25519 key pair labelled "${options.keyLabel}" in the token "${options.tokenLabel}"; check PKCS11_KEY_LABEL`,
          );
        }
        await options.beforeCreate?.(`token "${options.tokenLabel}", key "${options.keyLabel}"`);
        pair = generatePair(token, options.keyLabel);
      }
      return new Pkcs11Signer(token, pair.privateKey, toKeyObject(pair.publicKey, options.keyLabel));
    } catch (error) {
      token.close();
      throw error;
    }
  }

  sign(message: Uint8Array): Promise<Buffer> {
    return new Promise((resolve) => {
      if (!this.#privateKey) throw new AppError('internal', 'signer is closed');
      try {
        resolve(Buffer.from(this.token.session.createSign(CKM_EDDSA, this.#privateKey).once(Buffer.from(message))));
      } catch (cause) {
        throw new AppError('key_store_unavailable', `The token refused to sign (${errorText(cause)})`, [], { cause });
      }
    });
  }

  close(): void {
    this.#privateKey = undefined;
    this.token.close();
  }
}

function findPair(
  token: Pkcs11Token,
  label: string,
): { privateKey: Graphene.PrivateKey; publicKey: Graphene.PublicKey } | undefined {
  const { ObjectClass } = token.graphene;
  const privates = token.find({ class: ObjectClass.PRIVATE_KEY, keyType: CKK_EC_EDWARDS, label });
  const publics = token.find({ class: ObjectClass.PUBLIC_KEY, keyType: CKK_EC_EDWARDS, label });
  if (privates.length === 0 && publics.length === 0) return undefined;
  if (privates.length !== 1 || publics.length !== 1) {
    throw new AppError(
      'key_not_found',
      `The token should hold exactly one Ed25519 private and one public key labelled "${label}" (found ${privates.length} and ${publics.length})`,
    );
  }
  return {
    privateKey: (privates[0] as Graphene.SessionObject).toType<Graphene.PrivateKey>(),
    publicKey: (publics[0] as Graphene.SessionObject).toType<Graphene.PublicKey>(),
  };
}

function generatePair(
  token: Pkcs11Token,
  label: string,
): { privateKey: Graphene.PrivateKey; publicKey: Graphene.PublicKey } {
  const pair = token.session.generateKeyPair(
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    { keyType: CKK_EC_EDWARDS, label, token: true, verify: true, paramsEC: ED25519_PARAMS },
    // Persistent, private, and never leaves the token in any form.
    { keyType: CKK_EC_EDWARDS, label, token: true, private: true, sensitive: true, extractable: false, sign: true },
  );
  return { privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** CKA_EC_POINT of an Edwards key is the raw 32 bytes, usually DER-wrapped in an OCTET STRING. */
function toKeyObject(publicKey: Graphene.PublicKey, label: string): KeyObject {
  const point = publicKey.getAttribute({ pointEC: null }).pointEC as Buffer | undefined;
  const raw = point?.length === 34 && point[0] === 0x04 && point[1] === 32 ? point.subarray(2) : point;
  if (raw?.length !== 32) throw new AppError('key_not_found', `The public key "${label}" is not an Ed25519 key`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}
