import { createHmac, hkdfSync } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import { DataKey } from './data-key.js';
import { encodeContext } from './encryption-context.js';

const owner = { org: 'o1', user: 'u1', connection: 'c1', record: 'r1' };
const plaintext = Buffer.from('{"track":"Blue in Green"}');

function expectCode(fn: () => unknown, code: string): void {
  expect(fn).toThrow(expect.objectContaining({ name: 'AppError', code }));
}

describe('DataKey', () => {
  it('decrypts what it encrypted', () => {
    const key = DataKey.generate();
    expect(key.decrypt(key.encrypt(plaintext, owner), owner).toString()).toBe(plaintext.toString());
  });

  it('round-trips empty and large payloads, with bytes as AAD too', () => {
    const key = DataKey.generate();
    const aad = Buffer.from('pre-encoded');
    for (const data of [Buffer.alloc(0), Buffer.alloc(1 << 20, 7)]) {
      expect(key.decrypt(key.encrypt(data, aad), aad).equals(data)).toBe(true);
    }
  });

  it('uses a fresh nonce each time, so equal plaintexts do not look equal', () => {
    const key = DataKey.generate();
    expect(key.encrypt(plaintext, owner).equals(key.encrypt(plaintext, owner))).toBe(false);
  });

  it('never hands out a nonce twice, across many refills of its nonce pool, and each one decrypts', () => {
    const key = DataKey.generate();
    const nonces = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const sealed = key.encrypt(plaintext, owner);
      nonces.add(sealed.subarray(1, 13).toString('hex'));
      if (i % 997 === 0) expect(key.decrypt(sealed, owner).equals(plaintext)).toBe(true);
    }
    expect(nonces.size).toBe(5_000);
    expect(nonces.has('00'.repeat(12))).toBe(false);
  });

  it('writes version | 12-byte nonce | ciphertext | 16-byte tag', () => {
    const sealed = DataKey.generate().encrypt(plaintext, owner);
    expect(sealed[0]).toBe(0x01);
    expect(sealed.length).toBe(1 + 12 + plaintext.length + 16);
  });

  it('rejects a flipped bit anywhere in the ciphertext', () => {
    const key = DataKey.generate();
    const sealed = key.encrypt(Buffer.from('short'), owner);
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const tampered = Buffer.from(sealed);
      tampered[bit >> 3]! ^= 1 << (bit & 7);
      expectCode(() => key.decrypt(tampered, owner), 'decryption_failed');
    }
  });

  it('rejects truncated or empty input', () => {
    const key = DataKey.generate();
    const sealed = key.encrypt(plaintext, owner);
    expectCode(() => key.decrypt(sealed.subarray(0, sealed.length - 1), owner), 'decryption_failed');
    expectCode(() => key.decrypt(Buffer.alloc(0), owner), 'decryption_failed');
  });

  it("will not decrypt with another owner's associated data", () => {
    const key = DataKey.generate();
    const sealed = key.encrypt(plaintext, owner);
    expectCode(() => key.decrypt(sealed, { ...owner, user: 'u2' }), 'decryption_failed');
    expectCode(() => key.decrypt(sealed, { ...owner, record: 'r2' }), 'decryption_failed');
    expectCode(() => key.decrypt(sealed, { ...owner, extra: '' }), 'decryption_failed');
  });

  it('will not decrypt with another key', () => {
    const sealed = DataKey.generate().encrypt(plaintext, owner);
    expectCode(() => DataKey.generate().decrypt(sealed, owner), 'decryption_failed');
  });

  it('once destroyed, zeroes its bytes and can neither encrypt nor decrypt', () => {
    const bytes = Buffer.alloc(32, 0xab);
    const key = new DataKey(bytes);
    const sealed = key.encrypt(plaintext, owner);
    key.destroy();
    expect(bytes.equals(Buffer.alloc(32))).toBe(true);
    expect(key.destroyed).toBe(true);
    expectCode(() => key.encrypt(plaintext, owner), 'key_destroyed');
    expectCode(() => key.decrypt(sealed, owner), 'key_destroyed');
  });

  it('does not reveal key bytes when logged as JSON', () => {
    const bytes = Buffer.alloc(32, 0xab);
    expect(JSON.stringify({ key: new DataKey(Buffer.from(bytes)) })).not.toContain(bytes.toString('hex').slice(0, 8));
  });

  describe('digest', () => {
    it('is equal for equal data and context, different for any other data, context or key', () => {
      const key = DataKey.generate();
      const digest = key.digest(plaintext, owner);
      expect(digest).toHaveLength(32);
      expect(key.digest(Buffer.from(plaintext), { ...owner })).toEqual(digest);
      expect(key.digest(Buffer.from('{"track":"So What"}'), owner)).not.toEqual(digest);
      expect(key.digest(plaintext, { ...owner, record: 'r2' })).not.toEqual(digest);
      expect(DataKey.generate().digest(plaintext, owner)).not.toEqual(digest);
    });

    it('is HMAC-SHA-256 under an HKDF subkey, never the key itself, with the context length-prefixed', () => {
      const bytes = Buffer.alloc(32, 0x11);
      const key = new DataKey(Buffer.from(bytes));
      const aad = encodeContext(owner);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(aad.length);
      const subkey = Buffer.from(hkdfSync('sha256', bytes, Buffer.alloc(0), 'context-gateway data-key digest v1', 32));
      const expected = createHmac('sha256', subkey).update(length).update(aad).update(plaintext).digest();
      expect(key.digest(plaintext, owner)).toEqual(expected);
      // Not the HMAC under the encryption key.
      expect(key.digest(plaintext, owner)).not.toEqual(
        createHmac('sha256', bytes).update(length).update(aad).update(plaintext).digest(),
      );
      // Moving bytes between context and data changes the digest.
      expect(key.digest(Buffer.concat([aad.subarray(-1), plaintext]), aad.subarray(0, -1))).not.toEqual(expected);
    });

    it('stops with the key', () => {
      const key = DataKey.generate();
      key.digest(plaintext, owner);
      key.destroy();
      expectCode(() => key.digest(plaintext, owner), 'key_destroyed');
    });
  });

  it('digestMatches compares with a digest of the same data and context only, and never with none', () => {
    const key = DataKey.generate();
    const seal = key.digest(Buffer.from('terms'), { purpose: 'test' });
    expect(key.digestMatches(Buffer.from('terms'), { purpose: 'test' }, seal)).toBe(true);
    expect(key.digestMatches(Buffer.from('terms!'), { purpose: 'test' }, seal)).toBe(false);
    expect(key.digestMatches(Buffer.from('terms'), { purpose: 'other' }, seal)).toBe(false);
    expect(key.digestMatches(Buffer.from('terms'), { purpose: 'test' }, seal.subarray(1))).toBe(false);
    expect(key.digestMatches(Buffer.from('terms'), { purpose: 'test' }, null)).toBe(false);
    expect(DataKey.generate().digestMatches(Buffer.from('terms'), { purpose: 'test' }, seal)).toBe(false);
  });
});
