import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { EncryptionContext } from './encryption-context.js';
import { EnvelopeCipher } from './envelope-cipher.js';
import type { KeyProvider } from './key-provider.js';
import { LocalKeyProvider } from './local-key-provider.js';
import { WrappedKey } from './wrapped-key.js';

const alice = { org: 'o1', user: 'alice', connection: 'spotify-1' };
const bob = { org: 'o1', user: 'bob', connection: 'spotify-2' };
const record = (id: string): EncryptionContext => ({
  personalServer: 'ps1',
  connection: 'spotify-1',
  record: id,
  type: 'track',
});

/** Wraps a real provider and counts unwraps, to see what the cache saves. */
class CountingProvider implements KeyProvider {
  readonly id: string;
  unwraps = 0;
  constructor(private readonly inner: KeyProvider) {
    this.id = inner.id;
  }
  currentVersion(): Promise<number> {
    return this.inner.currentVersion();
  }
  wrapKey(key: Uint8Array, context: EncryptionContext): Promise<WrappedKey> {
    return this.inner.wrapKey(key, context);
  }
  unwrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    this.unwraps++;
    return this.inner.unwrapKey(wrapped, context);
  }
  rewrapKey(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    return this.inner.rewrapKey(wrapped, context);
  }
}

let dir: string;
let local: LocalKeyProvider;
beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'cg-envelope-'));
  local = await LocalKeyProvider.open({ path: join(dir, 'keyring.json'), createIfMissing: true });
});
afterAll(async () => {
  local.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('EnvelopeCipher', () => {
  it('encrypts with a new data key and decrypts after reopening it from the stored wrap', async () => {
    const cipher = new EnvelopeCipher(local);
    const { key, wrapped } = await cipher.generateDataKey(alice);
    const sealed = key.encrypt(Buffer.from('access-token-123'), alice);
    key.destroy();

    const stored = wrapped.toString(); // what goes into the connection row
    const reopened = await new EnvelopeCipher(local).openDataKey(WrappedKey.decode(stored), alice);
    expect(reopened.decrypt(sealed, alice).toString()).toBe('access-token-123');
  });

  it("refuses to open one owner's wrapped key for another owner", async () => {
    const cipher = new EnvelopeCipher(local);
    const { wrapped } = await cipher.generateDataKey(alice);
    await expect(cipher.openDataKey(wrapped, bob)).rejects.toMatchObject({ code: 'decryption_failed' });
  });

  it('binds each record to its id: a ciphertext copied to another record fails', async () => {
    const cipher = new EnvelopeCipher(local);
    const { wrapped } = await cipher.generateDataKey(alice);
    const key = await cipher.openDataKey(wrapped, alice);
    const sealed = key.encrypt(Buffer.from('{"name":"So What"}'), record('r1'));
    expect(key.decrypt(sealed, record('r1')).toString()).toBe('{"name":"So What"}');
    expect(() => key.decrypt(sealed, record('r2'))).toThrow(expect.objectContaining({ code: 'decryption_failed' }));
  });

  it('unwraps once and then serves the same key from the cache', async () => {
    const provider = new CountingProvider(local);
    const cipher = new EnvelopeCipher(provider);
    const { wrapped } = await cipher.generateDataKey(alice);
    const [a, b] = await Promise.all([cipher.openDataKey(wrapped, alice), cipher.openDataKey(wrapped, alice)]);
    const c = await cipher.openDataKey(wrapped, alice);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(provider.unwraps).toBe(1);
  });

  it('does not let a cached key bypass the owner check', async () => {
    const cipher = new EnvelopeCipher(local);
    const { wrapped } = await cipher.generateDataKey(alice);
    await cipher.openDataKey(wrapped, alice);
    await expect(cipher.openDataKey(wrapped, bob)).rejects.toMatchObject({ code: 'decryption_failed' });
  });

  it('shred zeroes the cached key, and the next open asks the provider again', async () => {
    const provider = new CountingProvider(local);
    const cipher = new EnvelopeCipher(provider);
    const { wrapped } = await cipher.generateDataKey(alice);
    const key = await cipher.openDataKey(wrapped, alice);
    const sealed = key.encrypt(Buffer.from('x'), alice);

    cipher.shred(wrapped, alice);
    expect(key.destroyed).toBe(true);
    expect(() => key.decrypt(sealed, alice)).toThrow(expect.objectContaining({ code: 'key_destroyed' }));
    expect(provider.unwraps).toBe(1);
    await cipher.openDataKey(wrapped, alice);
    expect(provider.unwraps).toBe(2);
  });

  it('rewraps to the current KEK version without changing the data key', async () => {
    const path = join(dir, 'rotating.json');
    const provider = await LocalKeyProvider.open({ path, createIfMissing: true });
    const cipher = new EnvelopeCipher(provider);
    const { key, wrapped } = await cipher.generateDataKey(alice);
    const sealed = key.encrypt(Buffer.from('refresh-token'), alice);

    await provider.rotate();
    expect(await cipher.needsRewrap(wrapped)).toBe(true);
    const moved = await cipher.rewrap(wrapped, alice);
    expect(moved.kekVersion).toBe(2);
    expect(await cipher.needsRewrap(moved)).toBe(false);

    await provider.removeVersion(1);
    const reopened = await new EnvelopeCipher(provider).openDataKey(moved, alice);
    expect(reopened.decrypt(sealed, alice).toString()).toBe('refresh-token');
    await expect(new EnvelopeCipher(provider).openDataKey(wrapped, alice)).rejects.toMatchObject({
      code: 'key_not_found',
    });
    provider.close();
  });
});
