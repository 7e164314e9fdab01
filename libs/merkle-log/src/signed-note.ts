/*
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519, the format Go's
 * golang.org/x/mod/sumdb/note and transparency-dev tooling read: the text, a blank line,
 * then one line per signature `— <key name> <base64(key id || signature)>`, where
 * key id = SHA-256(name || "\n" || 0x01 || public key)[0:4] and the signature covers the
 * text bytes exactly.
 */
import { createHash, type KeyObject, sign, verify } from 'node:crypto';

import { invalid } from './tree-math.js';

const SIGNATURE_PREFIX = '\u2014 '; // em dash + space
const ED25519_ALGORITHM = 0x01;
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
  return createHash('sha256')
    .update(`${keyName}\n`)
    .update(Buffer.from([ED25519_ALGORITHM]))
    .update(rawEd25519PublicKey(key))
    .digest()
    .subarray(0, 4);
}

/** Signs `text` (which must end in a newline and contain no blank line). */
export function signNote(text: string, privateKey: KeyObject, keyName: string): string {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519')
    invalid('need an Ed25519 private key');
  assertKeyName(keyName);
  if (!text.endsWith('\n') || text.includes('\n\n')) invalid('note text must end in a newline and have no blank lines');
  const signature = sign(null, Buffer.from(text, 'utf8'), privateKey);
  const blob = Buffer.concat([ed25519KeyId(keyName, privateKey), signature]);
  return `${text}\n${SIGNATURE_PREFIX}${keyName} ${blob.toString('base64')}\n`;
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
