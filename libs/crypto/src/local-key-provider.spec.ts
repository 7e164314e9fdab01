import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';

import { LocalKeyProvider, refuseNewKeyWhileInUse } from './local-key-provider.js';
import { WrappedKey } from './wrapped-key.js';

const owner = { org: 'o1', user: 'u1', connection: 'c1' };

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'cg-crypto-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function mode(path: string): Promise<number> {
  return (await fs.stat(path)).mode & 0o777;
}

async function writeKeyFile(path: string, content: unknown, fileMode = 0o600): Promise<void> {
  await fs.writeFile(path, typeof content === 'string' ? content : JSON.stringify(content), { mode: fileMode });
  await fs.chmod(path, fileMode); // writeFile's mode is filtered by the umask
}

function validKeyring(): object {
  return {
    format: 'context-gateway/keyring@1',
    current: 1,
    keys: [{ version: 1, key: randomBytes(32).toString('base64'), createdAt: '2026-01-01T00:00:00Z' }],
  };
}

describe('LocalKeyProvider key file', () => {
  it('creates a missing key file with mode 0600 in a new 0700 directory', async () => {
    const path = join(dir, 'secrets', 'keys', 'keyring.json');
    const provider = await LocalKeyProvider.open({ path, createIfMissing: true });
    expect(await mode(path)).toBe(0o600);
    expect(await mode(join(dir, 'secrets', 'keys'))).toBe(0o700);
    expect(await mode(join(dir, 'secrets'))).toBe(0o700);
    expect(await provider.currentVersion()).toBe(1);
    expect(await fs.readdir(join(dir, 'secrets', 'keys'))).toEqual(['keyring.json']); // no temp left over
  });

  it('reuses an existing key file instead of replacing it', async () => {
    const path = join(dir, 'keyring.json');
    const first = await LocalKeyProvider.open({ path, createIfMissing: true });
    const wrapped = await first.wrapKey(randomBytes(32), owner);
    const second = await LocalKeyProvider.open({ path, createIfMissing: true });
    await expect(second.unwrapKey(wrapped, owner)).resolves.toHaveLength(32);
  });

  it('agrees on one keyring when several processes create it at once', async () => {
    const path = join(dir, 'keyring.json');
    const providers = await Promise.all(
      Array.from({ length: 5 }, () => LocalKeyProvider.open({ path, createIfMissing: true })),
    );
    const wrapped = await providers[0]!.wrapKey(randomBytes(32), owner);
    for (const provider of providers) await expect(provider.unwrapKey(wrapped, owner)).resolves.toHaveLength(32);
  });

  it('asks beforeCreate only when the file is missing, and creates nothing when it refuses', async () => {
    const path = join(dir, 'guarded', 'keyring.json');
    const asked: string[] = [];
    const refuse = refuseNewKeyWhileInUse(() => Promise.resolve(3), 'connection data keys wrapped by it');
    await expect(
      LocalKeyProvider.open({ path, createIfMissing: true, beforeCreate: async (p) => (asked.push(p), refuse(p)) }),
    ).rejects.toMatchObject({
      code: 'key_file_missing',
      message: expect.stringContaining('3 connection data keys wrapped by it are stored'),
    });
    expect(asked).toEqual([path]);
    await expect(fs.access(path)).rejects.toThrow();

    await LocalKeyProvider.open({
      path,
      createIfMissing: true,
      beforeCreate: refuseNewKeyWhileInUse(() => Promise.resolve(0), 'keys'),
    });
    // The file exists now: a guard that would refuse is not even asked.
    await expect(LocalKeyProvider.open({ path, createIfMissing: true, beforeCreate: refuse })).resolves.toBeInstanceOf(
      LocalKeyProvider,
    );
  });

  it('refuses a missing file unless asked to create it', async () => {
    await expect(LocalKeyProvider.open({ path: join(dir, 'nope.json') })).rejects.toMatchObject({
      code: 'key_file_invalid',
    });
  });

  it.each([
    ['0644', 0o644],
    ['0640', 0o640],
    ['0604', 0o604],
    ['0660', 0o660],
  ])('refuses a key file with mode %s', async (_label, fileMode) => {
    const path = join(dir, 'keyring.json');
    await writeKeyFile(path, validKeyring(), fileMode);
    await expect(LocalKeyProvider.open({ path })).rejects.toMatchObject({ code: 'key_file_insecure' });
    await expect(LocalKeyProvider.open({ path, createIfMissing: true })).rejects.toMatchObject({
      code: 'key_file_insecure',
    });
  });

  it('accepts a stricter 0400 key file', async () => {
    const path = join(dir, 'keyring.json');
    await writeKeyFile(path, validKeyring(), 0o400);
    await expect(LocalKeyProvider.open({ path })).resolves.toBeInstanceOf(LocalKeyProvider);
  });

  it.each([
    ['not JSON', '{"format":'],
    ['wrong format tag', { ...validKeyring(), format: 'something-else' }],
    ['no keys', { ...validKeyring(), keys: [] }],
    ['a short key', { ...validKeyring(), keys: [{ version: 1, key: randomBytes(16).toString('base64') }] }],
    ['a non-integer version', { ...validKeyring(), keys: [{ version: 1.5, key: randomBytes(32).toString('base64') }] }],
    ['current naming no key', { ...validKeyring(), current: 2 }],
    [
      'a duplicate version',
      { ...validKeyring(), keys: [1, 1].map((version) => ({ version, key: randomBytes(32).toString('base64') })) },
    ],
  ])('refuses a malformed key file: %s', async (_name, content) => {
    const path = join(dir, 'keyring.json');
    await writeKeyFile(path, content);
    await expect(LocalKeyProvider.open({ path })).rejects.toMatchObject({ code: 'key_file_invalid' });
  });

  it('refuses a directory in place of the key file', async () => {
    const path = join(dir, 'keyring.json');
    await fs.mkdir(path, { mode: 0o700 });
    await expect(LocalKeyProvider.open({ path, createIfMissing: true })).rejects.toMatchObject({
      code: 'key_file_invalid',
    });
  });
});

describe('LocalKeyProvider wrapping', () => {
  it('unwraps only for the owner it wrapped for', async () => {
    const provider = await LocalKeyProvider.open({ path: join(dir, 'k.json'), createIfMissing: true });
    const dataKey = randomBytes(32);
    const wrapped = await provider.wrapKey(dataKey, owner);
    expect((await provider.unwrapKey(wrapped, owner)).equals(dataKey)).toBe(true);
    await expect(provider.unwrapKey(wrapped, { ...owner, connection: 'c2' })).rejects.toMatchObject({
      code: 'decryption_failed',
    });
  });

  it('survives storage as text and detects a tampered wrapped key', async () => {
    const provider = await LocalKeyProvider.open({ path: join(dir, 'k.json'), createIfMissing: true });
    const wrapped = await provider.wrapKey(randomBytes(32), owner);
    await expect(provider.unwrapKey(WrappedKey.decode(wrapped.toString()), owner)).resolves.toHaveLength(32);
    const tampered = Buffer.from(wrapped.ciphertext);
    tampered[20]! ^= 1;
    await expect(provider.unwrapKey(new WrappedKey('local', 1, tampered), owner)).rejects.toMatchObject({
      code: 'decryption_failed',
    });
  });

  it('will not open a key from another provider or another keyring', async () => {
    const provider = await LocalKeyProvider.open({ path: join(dir, 'a.json'), createIfMissing: true });
    const other = await LocalKeyProvider.open({ path: join(dir, 'b.json'), createIfMissing: true });
    const wrapped = await provider.wrapKey(randomBytes(32), owner);
    await expect(other.unwrapKey(wrapped, owner)).rejects.toMatchObject({ code: 'decryption_failed' });
    const foreign = new WrappedKey('aws-kms', 1, wrapped.ciphertext);
    await expect(provider.unwrapKey(foreign, owner)).rejects.toMatchObject({ code: 'key_not_found' });
  });
});

describe('LocalKeyProvider rotation', () => {
  it('wraps with the new version, still unwraps old ones, and rewraps them to current', async () => {
    const path = join(dir, 'k.json');
    const provider = await LocalKeyProvider.open({ path, createIfMissing: true });
    const dataKey = randomBytes(32);
    const old = await provider.wrapKey(dataKey, owner);

    expect(await provider.rotate()).toBe(2);
    expect(await provider.currentVersion()).toBe(2);
    expect(await mode(path)).toBe(0o600);
    expect((await provider.wrapKey(randomBytes(32), owner)).kekVersion).toBe(2);
    expect((await provider.unwrapKey(old, owner)).equals(dataKey)).toBe(true);

    const moved = await provider.rewrapKey(old, owner);
    expect(moved.kekVersion).toBe(2);
    expect((await provider.unwrapKey(moved, owner)).equals(dataKey)).toBe(true);
    // Rewrapping keeps the owner binding.
    await expect(provider.unwrapKey(moved, { ...owner, user: 'u2' })).rejects.toMatchObject({
      code: 'decryption_failed',
    });
    // The rotation is on disk, not only in this process.
    const reopened = await LocalKeyProvider.open({ path });
    expect(reopened.versions()).toEqual([1, 2]);
    expect(await reopened.currentVersion()).toBe(2);
  });

  it('makes keys under a removed version unrecoverable (key_not_found)', async () => {
    const path = join(dir, 'k.json');
    const provider = await LocalKeyProvider.open({ path, createIfMissing: true });
    const old = await provider.wrapKey(randomBytes(32), owner);
    await expect(provider.removeVersion(1)).rejects.toMatchObject({ code: 'conflict' });
    await provider.rotate();
    await provider.removeVersion(1);
    await expect(provider.unwrapKey(old, owner)).rejects.toMatchObject({ code: 'key_not_found' });
    await expect((await LocalKeyProvider.open({ path })).unwrapKey(old, owner)).rejects.toMatchObject({
      code: 'key_not_found',
    });
    await expect(provider.removeVersion(9)).rejects.toMatchObject({ code: 'key_not_found' });
  });

  it('reports a version it has never had as key_not_found', async () => {
    const provider = await LocalKeyProvider.open({ path: join(dir, 'k.json'), createIfMissing: true });
    const wrapped = await provider.wrapKey(randomBytes(32), owner);
    const future = new WrappedKey('local', 42, wrapped.ciphertext);
    await expect(provider.unwrapKey(future, owner)).rejects.toMatchObject({ code: 'key_not_found' });
  });

  it("picks up another process's rotation when it meets the new version", async () => {
    const path = join(dir, 'k.json');
    const rotator = await LocalKeyProvider.open({ path, createIfMissing: true });
    const reader = await LocalKeyProvider.open({ path });
    await rotator.rotate();
    const dataKey = randomBytes(32);
    const wrapped = await rotator.wrapKey(dataKey, owner);
    expect(wrapped.kekVersion).toBe(2);
    expect((await reader.unwrapKey(wrapped, owner)).equals(dataKey)).toBe(true);
    expect(await reader.currentVersion()).toBe(2);
  });

  it('serializes concurrent rotations so no version is lost', async () => {
    const path = join(dir, 'k.json');
    const provider = await LocalKeyProvider.open({ path, createIfMissing: true });
    expect((await Promise.all([provider.rotate(), provider.rotate(), provider.rotate()])).sort()).toEqual([2, 3, 4]);
    expect((await LocalKeyProvider.open({ path })).versions()).toEqual([1, 2, 3, 4]);
  });

  it('cannot be used after close, not even by reloading the file', async () => {
    const provider = await LocalKeyProvider.open({ path: join(dir, 'k.json'), createIfMissing: true });
    const wrapped = await provider.wrapKey(randomBytes(32), owner);
    provider.close();
    await expect(provider.wrapKey(randomBytes(32), owner)).rejects.toMatchObject({ code: 'key_not_found' });
    // An unknown version makes an open provider re-read its file; a closed one stays empty.
    await expect(provider.unwrapKey(wrapped, owner)).rejects.toMatchObject({ code: 'key_not_found' });
    expect(provider.versions()).toEqual([]);
  });
});
