/*
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519, the format Go's
 * golang.org/x/mod/sumdb/note and transparency-dev tooling read: the text, a blank line,
 * then one line per signature `— <key name> <base64(key id || signature)>`, where
 * key id = SHA-256(name || "\n" || 0x01 || public key)[0:4] and the signature covers the
 * text bytes exactly.
 */
import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

import { invalid } from './tree-math.js';

export const SIGNATURE_PREFIX = '\u2014 '; // em dash + space
const ED25519_ALGORITHM = 0x01;
/** C2SP tlog-cosignature: an Ed25519 cosignature's key id and verifier key use type 0x04. */
export const COSIGNATURE_ALGORITHM = 0x04;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export type NoteVerification = { ok: true; text: string } | { ok: false; reason: string };

function assertKeyName(name: string): void {
  if (!/^[\x21-\x7e]+$/.test(name) || name.includes('+'))
    invalid('key name must be printable ASCII without spaces or "+"');
}

function rawEd25519PublicKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') invalid('not an Ed25519 key');
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') invalid('not an Ed25519 key');
  return Buffer.from(x, 'base64url');
}

/** The 4-byte key id that lets a verifier pick its signature out of several. */
export function ed25519KeyId(keyName: string, key: KeyObject): Buffer {
  return noteKeyId(keyName, ED25519_ALGORITHM, key);
}

/**
 * An Ed25519 key that signs without handing itself out: a key in an HSM (libs/crypto
 * Pkcs11Signer), a remote KMS, or a local file. Structurally the same as libs/crypto's
 * Signer, so this library needs no dependency on it.
 */
export interface NoteSigner {
  readonly publicKey: KeyObject;
  /** A 64-byte pure Ed25519 signature over `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

function assertNoteText(text: string): void {
  if (!text.endsWith('\n') || text.includes('\n\n')) invalid('note text must end in a newline and have no blank lines');
}

function signatureLine(keyName: string, keyId: Buffer, signature: Uint8Array): string {
  if (signature.length !== 64) invalid('an Ed25519 signature is 64 bytes');
  return `${SIGNATURE_PREFIX}${keyName} ${Buffer.concat([keyId, signature]).toString('base64')}\n`;
}

/** Signs `text` (which must end in a newline and contain no blank line). */
export function signNote(text: string, privateKey: KeyObject, keyName: string): string {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519')
    invalid('need an Ed25519 private key');
  assertKeyName(keyName);
  assertNoteText(text);
  const signature = sign(null, Buffer.from(text, 'utf8'), privateKey);
  return `${text}\n${signatureLine(keyName, ed25519KeyId(keyName, privateKey), signature)}`;
}

/** signNote with a key that may live in a key store (it is only asked to sign). */
export async function signNoteWith(text: string, signer: NoteSigner, keyName: string): Promise<string> {
  assertKeyName(keyName);
  assertNoteText(text);
  const signature = await signer.sign(Buffer.from(text, 'utf8'));
  return `${text}\n${signatureLine(keyName, ed25519KeyId(keyName, signer.publicKey), signature)}`;
}

/** A C2SP verifier key (`<name>+<hex key id>+<base64(type || public key)>`) parsed and checked. */
export interface VerifierKey {
  name: string;
  publicKey: KeyObject;
  /** 0x01: an Ed25519 note signature (a log's key); 0x04: an Ed25519 cosignature (a witness's key). */
  type: number;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Wraps 32 raw Ed25519 public-key bytes as a KeyObject. */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) invalid('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function noteKeyId(name: string, type: number, key: KeyObject): Buffer {
  return createHash('sha256')
    .update(`${name}\n`)
    .update(Buffer.from([type]))
    .update(rawEd25519PublicKey(key))
    .digest()
    .subarray(0, 4);
}

/** The verifier key string for a public key, as operators pin it and as Go's note package reads it. */
export function encodeVerifierKey(name: string, publicKey: KeyObject, type = ED25519_ALGORITHM): string {
  assertKeyName(name);
  const material = Buffer.concat([Buffer.from([type]), rawEd25519PublicKey(publicKey)]);
  return `${name}+${noteKeyId(name, type, publicKey).toString('hex')}+${material.toString('base64')}`;
}

/** Parses a verifier key; throws (validation_failed) on anything malformed or a key id that does not match. */
export function parseVerifierKey(text: string): VerifierKey {
  const trimmed = text.trim();
  const first = trimmed.indexOf('+');
  const second = trimmed.indexOf('+', first + 1);
  if (first <= 0 || second < 0) invalid('a verifier key is <name>+<key id>+<base64 key>');
  const name = trimmed.slice(0, first);
  const id = trimmed.slice(first + 1, second);
  const encoded = trimmed.slice(second + 1);
  assertKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(id)) invalid('a verifier key id is 8 lower-case hex digits');
  if (!BASE64.test(encoded)) invalid('a verifier key ends in base64');
  const material = Buffer.from(encoded, 'base64');
  const type = material[0];
  if (material.length !== 33 || (type !== ED25519_ALGORITHM && type !== COSIGNATURE_ALGORITHM))
    invalid('only Ed25519 verifier keys (type 0x01 or 0x04) are supported');
  const publicKey = ed25519PublicKeyFromRaw(material.subarray(1));
  if (!noteKeyId(name, type, publicKey).equals(Buffer.from(id, 'hex'))) invalid('the verifier key id does not match');
  return { name, publicKey, type };
}

/**
 * Returns the text if `publicKey` (named `keyName`) signed it. Signatures by other keys
 * (e.g. witnesses' cosignatures) are skipped, as the spec asks. Never throws on bad
 * input: notes come from storage an attacker may have touched.
 */
export function openNote(note: string, publicKey: KeyObject, keyName: string): NoteVerification {
  if (publicKey.asymmetricKeyType !== 'ed25519') return { ok: false, reason: 'not an Ed25519 key' };
  const split = note.indexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return { ok: false, reason: 'not a signed note' };
  const text = note.slice(0, split + 1);
  const keyId = ed25519KeyId(keyName, publicKey);
  for (const line of note.slice(split + 2, -1).split('\n')) {
    if (!line.startsWith(SIGNATURE_PREFIX)) return { ok: false, reason: 'malformed signature line' };
    const [name, encoded, extra] = line.slice(SIGNATURE_PREFIX.length).split(' ');
    if (name !== keyName || encoded === undefined || extra !== undefined || !BASE64.test(encoded)) continue;
    const blob = Buffer.from(encoded, 'base64');
    if (blob.length !== 4 + 64 || !blob.subarray(0, 4).equals(keyId)) continue;
    return verify(null, Buffer.from(text, 'utf8'), publicKey, blob.subarray(4))
      ? { ok: true, text }
      : { ok: false, reason: 'signature does not match the note' };
  }
  return { ok: false, reason: 'no signature by the trusted key' };
}
