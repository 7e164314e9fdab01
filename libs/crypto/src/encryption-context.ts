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
  const entries: Array<[Buffer, Buffer]> = [];
  let size = 4;
  for (const [key, value] of Object.entries(context)) {
    // Types say string, but contexts are often built from untyped input; an `undefined`
    // silently encoded as "undefined" would bind the wrong owner.
    if (typeof value !== 'string') {
      throw new AppError('internal', `encryption context field "${key}" is not a string`);
    }
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    entries.push([k, v]);
    size += 8 + k.length + v.length;
  }
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));

  const out = Buffer.allocUnsafe(size);
  let offset = out.writeUInt32BE(entries.length, 0);
  for (const [k, v] of entries) {
    offset = out.writeUInt32BE(k.length, offset);
    offset += k.copy(out, offset);
    offset = out.writeUInt32BE(v.length, offset);
    offset += v.copy(out, offset);
  }
  return out;
}
