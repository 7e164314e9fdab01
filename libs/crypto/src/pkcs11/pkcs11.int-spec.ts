import { randomBytes, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { z } from 'zod';

import { EnvelopeCipher } from '../envelope-cipher.js';
import { keyStoreEnvShape, openKeyProvider, openSigner, refineKeyStoreEnv } from '../key-store.js';
import { LocalKeyProvider } from '../local-key-provider.js';
import { createSoftHsmToken, processSoftHsmConfig, type SoftHsmToken } from '../testing/soft-hsm.js';
import { WrappedKey } from '../wrapped-key.js';
import { Pkcs11KeyProvider } from './pkcs11-key-provider.js';
import { Pkcs11Signer } from './pkcs11-signer.js';

// Real SoftHSM2 tokens in a temp dir: the same PKCS#11 calls an HSM or a KMS front end answers.
let dir: string;
let token: SoftHsmToken;
let other: SoftHsmToken;
const owner = { org: 'o1', user: 'u1', connection: 'c1' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cg-pkcs11-'));
  // Both tokens exist before the module is first initialized (SoftHSM2 lists tokens once).
  token = await createSoftHsmToken(processSoftHsmConfig(), 'cg-test', '1234');
  other = await createSoftHsmToken(processSoftHsmConfig(), 'cg-other', '9876');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (keyLabel: string, extra: Partial<Parameters<typeof Pkcs11KeyProvider.open>[0]> = {}) =>
  Pkcs11KeyProvider.open({ ...token, keyLabel, createIfMissing: true, ...extra });

describe('Pkcs11KeyProvider', () => {
  it('wraps in the token and unwraps only with the same context', async () => {
    const provider = await open('wrap');
    const dataKey = randomBytes(32);
    const wrapped = await provider.wrapKey(dataKey, owner);
    expect(wrapped.providerId).toBe('pkcs11');
    expect(wrapped.kekVersion).toBe(1);
    // Round-trips through its stored form.
    const stored = WrappedKey.decode(wrapped.toString());
    expect((await provider.unwrapKey(stored, owner)).equals(dataKey)).toBe(true);
    await expect(provider.unwrapKey(stored, { ...owner, connection: 'c2' })).rejects.toMatchObject({
      code: 'decryption_failed',
    });
    // A flipped bit fails too, and the session keeps working after failures.
    const tampered = Buffer.from(stored.ciphertext);
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    await expect(provider.unwrapKey(new WrappedKey('pkcs11', 1, tampered), owner)).rejects.toMatchObject({
      code: 'decryption_failed',
    });
    expect((await provider.unwrapKey(stored, owner)).equals(dataKey)).toBe(true);
    provider.close();
  });

  it('keeps the KEK inside the token: sensitive and not extractable', async () => {
    const provider = await open('sealed');
    const graphene = await import('graphene-pk11');
    const module = graphene.Module.load(token.module);
    module.initialize();
    const slots = module.getSlots(true);
    let session: import('graphene-pk11').Session | undefined;
    for (let i = 0; i < slots.length; i += 1) {
      const slot = slots.items(i);
      if (slot.getToken().label.trim() === token.tokenLabel) session = slot.open(graphene.SessionFlag.SERIAL_SESSION);
    }
    if (!session) throw new Error('token not found');
    // No login: PKCS#11 login state is per token and process, and the provider logged in.
    const key = session.find({ label: 'sealed.v1' }).items(0).toType<import('graphene-pk11').SecretKey>();
    expect(key.extractable).toBe(false);
    expect(key.sensitive).toBe(true);
    expect(() => key.getAttribute({ value: null })).toThrow(/ATTRIBUTE_SENSITIVE/);
    session.close();
    provider.close();
  });

  it('versions are labels: rotation adds <label>.v2, old wraps still open, rewrap moves them', async () => {
    const provider = await open('rot');
    const dataKey = randomBytes(32);
    const old = await provider.wrapKey(dataKey, owner);
    expect(await provider.rotate()).toBe(2);
    expect(await provider.currentVersion()).toBe(2);
    expect(provider.versions()).toEqual([1, 2]);
    const moved = await provider.rewrapKey(old, owner);
    expect(moved.kekVersion).toBe(2);
    expect((await provider.unwrapKey(moved, owner)).equals(dataKey)).toBe(true);
    // Another process (a second provider) sees the rotation without restarting.
    const reader = await open('rot', { createIfMissing: false });
    expect(await reader.currentVersion()).toBe(2);
    await provider.removeVersion(1);
    await expect(reader.unwrapKey(old, owner)).rejects.toMatchObject({ code: 'key_not_found' });
    await expect(provider.removeVersion(2)).rejects.toMatchObject({ code: 'conflict' });
    reader.close();
    provider.close();
  });

  it('one label does not open another label’s wraps (a KEK per service)', async () => {
    const broker = await open('svc-broker');
    const records = await open('svc-records');
    const wrapped = await broker.wrapKey(randomBytes(32), owner);
    await expect(records.unwrapKey(wrapped, owner)).rejects.toMatchObject({ code: 'decryption_failed' });
    broker.close();
    records.close();
  });

  it('works behind EnvelopeCipher like the local provider, and refuses local wraps', async () => {
    const provider = await open('envelope');
    const cipher = new EnvelopeCipher(provider);
    const { key, wrapped } = await cipher.generateDataKey(owner);
    const sealed = key.encrypt(Buffer.from('secret'), owner);
    const reopened = await new EnvelopeCipher(provider).openDataKey(wrapped, owner);
    expect(reopened.decrypt(sealed, owner).toString()).toBe('secret');
    const local = await LocalKeyProvider.open({ path: join(dir, 'local.key'), createIfMissing: true });
    const localWrap = await local.wrapKey(randomBytes(32), owner);
    await expect(provider.unwrapKey(localWrap, owner)).rejects.toMatchObject({ code: 'key_not_found' });
    local.close();
    provider.close();
  });

  it('says what is wrong: missing key, wrong PIN, unknown token, missing module', async () => {
    await expect(open('absent', { createIfMissing: false })).rejects.toMatchObject({
      code: 'key_not_found',
      message: expect.stringContaining('absent.v<N>') as unknown,
    });
    await expect(
      Pkcs11KeyProvider.open({ ...other, pin: '0000', keyLabel: 'x', createIfMissing: true }),
    ).rejects.toMatchObject({ code: 'key_store_login_failed', message: expect.stringContaining('PIN') as unknown });
    await expect(open('x', { tokenLabel: 'nope' })).rejects.toMatchObject({
      code: 'key_store_unavailable',
      message: expect.stringContaining(`"${token.tokenLabel}"`) as unknown,
    });
    await expect(open('x', { module: join(dir, 'missing.so') })).rejects.toMatchObject({
      code: 'key_store_unavailable',
      message: expect.stringContaining('PKCS11_MODULE') as unknown,
    });
  });

  it('asks before creating the first KEK, and creates nothing when refused', async () => {
    const refuse = () => Promise.reject(new Error('keys in use'));
    await expect(open('guarded', { beforeCreate: refuse })).rejects.toThrow('keys in use');
    await expect(open('guarded', { createIfMissing: false })).rejects.toMatchObject({ code: 'key_not_found' });
  });
});

describe('Pkcs11Signer', () => {
  it('signs Ed25519 in the token; the public key verifies and stays the same across opens', async () => {
    const signer = await Pkcs11Signer.open({ ...token, keyLabel: 'audit-signing', createIfMissing: true });
    const message = Buffer.from('checkpoint\n42\n');
    const signature = await signer.sign(message);
    expect(signature).toHaveLength(64);
    expect(verify(null, message, signer.publicKey, signature)).toBe(true);
    expect(verify(null, Buffer.from('checkpoint\n43\n'), signer.publicKey, signature)).toBe(false);
    const again = await Pkcs11Signer.open({ ...token, keyLabel: 'audit-signing' });
    expect(again.publicKey.export({ format: 'der', type: 'spki' })).toEqual(
      signer.publicKey.export({ format: 'der', type: 'spki' }),
    );
    again.close();
    signer.close();
    await expect(signer.sign(message)).rejects.toMatchObject({ code: 'internal' });
  });

  it('refuses a missing key pair unless asked to create it', async () => {
    await expect(Pkcs11Signer.open({ ...token, keyLabel: 'no-such-pair' })).rejects.toMatchObject({
      code: 'key_not_found',
    });
  });
});

describe('KEY_PROVIDER settings', () => {
  const schema = z.object(keyStoreEnvShape('svc.kek')).superRefine(refineKeyStoreEnv);

  it('requires module, token and exactly one PIN source for pkcs11', () => {
    const result = schema.safeParse({ KEY_PROVIDER: 'pkcs11', PKCS11_PIN: 'a', PKCS11_PIN_FILE: '/nonexistent' });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((issue) => issue.path.join('.')).sort();
    expect(paths).toEqual(['PKCS11_MODULE', 'PKCS11_PIN', 'PKCS11_PIN_FILE', 'PKCS11_TOKEN_LABEL']);
    expect(schema.safeParse({ KEY_PROVIDER: 'hsm' }).success).toBe(false);
    expect(schema.parse({})).toMatchObject({ KEY_PROVIDER: 'local', PKCS11_KEY_LABEL: 'svc.kek' });
  });

  it('opens the provider and the signer that KEY_PROVIDER names, the PIN read from a file', async () => {
    const pinFile = join(dir, 'pin');
    await writeFile(pinFile, `${token.pin}\n`, { mode: 0o600 });
    const env = schema.parse({
      KEY_PROVIDER: 'pkcs11',
      PKCS11_MODULE: token.module,
      PKCS11_TOKEN_LABEL: token.tokenLabel,
      PKCS11_PIN_FILE: pinFile,
    });
    const provider = await openKeyProvider(env, { localPath: join(dir, 'unused.key'), createIfMissing: true });
    expect(provider.id).toBe('pkcs11');
    provider.close();
    const signer = await openSigner(
      { ...env, PKCS11_KEY_LABEL: 'svc.signing' },
      {
        localPath: join(dir, 'unused.pem'),
        createIfMissing: true,
      },
    );
    expect(signer).toBeInstanceOf(Pkcs11Signer);
    signer.close();
    const local = await openSigner(schema.parse({}), { localPath: join(dir, 'signing.pem'), createIfMissing: true });
    const signature = await local.sign(Buffer.from('x'));
    expect(verify(null, Buffer.from('x'), local.publicKey, signature)).toBe(true);
    local.close();
  });
});
