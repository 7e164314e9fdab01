import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { encodeVerifierKey } from '@context-gateway/merkle-log';
import { afterAll, describe, expect, it } from '@jest/globals';

import { parsePinnedKey } from './pinned-key.js';

const ORIGIN = 'audit.example/v1';
const pair = generateKeyPairSync('ed25519');
const raw = Buffer.from(pair.publicKey.export({ format: 'jwk' }).x!, 'base64url');
const dir = mkdtempSync(join(tmpdir(), 'cg-pinned-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a pinned public key', () => {
  it('is read from a verifier key, base64, a PEM, or a file holding one', () => {
    const vkey = encodeVerifierKey(ORIGIN, pair.publicKey);
    const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const file = join(dir, 'log.pub');
    writeFileSync(file, `${vkey}\n`);
    for (const input of [vkey, raw.toString('base64'), pem, file]) {
      const pinned = parsePinnedKey(input, { type: 1, defaultName: ORIGIN });
      expect(pinned.name).toBe(ORIGIN);
      expect(pinned.publicKey.equals(pair.publicKey)).toBe(true);
    }
  });

  it('refuses a private key, inline or in a file', () => {
    const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const file = join(dir, 'audit-signing.key');
    writeFileSync(file, pem, { mode: 0o600 });
    expect(() => parsePinnedKey(pem, { type: 1, defaultName: ORIGIN })).toThrow('private key');
    expect(() => parsePinnedKey(file, { type: 1, defaultName: ORIGIN })).toThrow('private key');
  });

  it('refuses a witness key where a log key is expected, and garbage', () => {
    const witnessKey = encodeVerifierKey('witness.example/w1', pair.publicKey, 0x04);
    expect(() => parsePinnedKey(witnessKey, { type: 1 })).toThrow('expected 0x01');
    expect(parsePinnedKey(witnessKey, { type: 4 }).name).toBe('witness.example/w1');
    expect(() => parsePinnedKey('abc', { type: 1, defaultName: ORIGIN })).toThrow(/neither/);
    expect(() => parsePinnedKey(raw.toString('base64'), { type: 4 })).toThrow('needs a name');
  });
});
