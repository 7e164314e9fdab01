import { encodeContext, type EncryptionContext } from './encryption-context.js';

/** AAD for wrapping: KEK version + owner context (the local provider adds a format byte). */
export function wrapAad(version: number, context: EncryptionContext): Buffer {
  const encoded = encodeContext(context);
  const aad = Buffer.allocUnsafe(4 + encoded.length);
  aad.writeUInt32BE(version, 0);
  encoded.copy(aad, 4);
  return aad;
}
