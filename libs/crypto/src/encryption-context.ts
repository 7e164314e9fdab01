import { AppError } from '@context-gateway/errors';

/**
 * Who a ciphertext belongs to, e.g. `{ org, user, connection, purpose }`. It is never
 * stored inside the ciphertext: the reader must supply the same fields again, so a row
 * copied to another owner (or read on behalf of one) fails authentication.
 */
export type EncryptionContext = Readonly<Record<string, string>>;

/**
 * Canonical bytes of a context, used as AEAD associated data:
 * `u32 count | (u32 keyLen | key | u32 valueLen | value)*`, UTF-8, entries sorted by the
 * key's UTF-8 bytes (so any language can reproduce it). Length prefixes make the encoding
 * injective: `{a:"b|c"}` and `{a:"b",c:""}` can never produce the same bytes.
 */
export function encodeContext(context: EncryptionContext): Buffer {
  // On the record hot path this runs once per record, so it measures lengths and writes
  // strings in place instead of building intermediate buffers.
  const keys = Object.keys(context).sort(); // UTF-16 order equals UTF-8 byte order for ASCII
  if (keys.some((key) => NON_ASCII.test(key))) keys.sort(compareUtf8);
  let size = 4;
  for (const key of keys) {
    const value = context[key];
    // Types say string, but contexts are often built from untyped input; an `undefined`
    // silently encoded as "undefined" would bind the wrong owner.
    if (typeof value !== 'string') {
      throw new AppError('internal', `encryption context field "${key}" is not a string`);
    }
    size += 8 + Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  }

  const out = Buffer.allocUnsafe(size);
  let offset = out.writeUInt32BE(keys.length, 0);
  for (const key of keys) {
    offset = writeString(out, key, offset);
    offset = writeString(out, context[key] as string, offset);
  }
  return out;
}

const NON_ASCII = /[^\p{ASCII}]/u;

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function writeString(out: Buffer, text: string, offset: number): number {
  const length = out.write(text, offset + 4, 'utf8');
  out.writeUInt32BE(length, offset);
  return offset + 4 + length;
}
