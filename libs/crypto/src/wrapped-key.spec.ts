import { describe, expect, it } from '@jest/globals';

import { WrappedKey } from './wrapped-key.js';

const sample = new WrappedKey('vault-transit', 7, Buffer.from('opaque provider ciphertext'));

describe('WrappedKey', () => {
  it('survives a round trip through bytes (bytea column)', () => {
    const decoded = WrappedKey.decode(sample.encode());
    expect(decoded.providerId).toBe('vault-transit');
    expect(decoded.kekVersion).toBe(7);
    expect(Buffer.from(decoded.ciphertext).toString()).toBe('opaque provider ciphertext');
  });

  it('survives a round trip through a string (text column)', () => {
    const text = sample.toString();
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(WrappedKey.decode(text).encode().equals(sample.encode())).toBe(true);
    expect(JSON.parse(JSON.stringify({ k: sample })).k).toBe(text);
  });

  it('reports corrupt stored values as decryption_failed', () => {
    const bytes = sample.encode();
    for (const bad of [Buffer.alloc(0), Buffer.from([2, ...bytes.subarray(1)]), bytes.subarray(0, 8)]) {
      expect(() => WrappedKey.decode(bad)).toThrow(expect.objectContaining({ code: 'decryption_failed' }));
    }
    const zeroVersion = Buffer.from(bytes);
    zeroVersion.writeUInt32BE(0, 2 + 'vault-transit'.length);
    expect(() => WrappedKey.decode(zeroVersion)).toThrow(expect.objectContaining({ code: 'decryption_failed' }));
  });
});
