import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createSoftHsmToken, processSoftHsmConfig, type SoftHsmToken } from '@context-gateway/crypto/testing';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';

// KEY_PROVIDER=pkcs11 for identity: the KEK that seals the authorization server's signing
// keys is made in the token, never in a file, and a restart opens the same keys.

let harness: ServiceHarness;
let keyDir: string;
let token: SoftHsmToken;
let other: SoftHsmToken;

async function start(tokenLabel: string): Promise<RunningService> {
  return harness.run({
    name: 'identity',
    module: AppModule,
    loadEnv,
    env: {
      KEY_PROVIDER: 'pkcs11',
      PKCS11_MODULE: token.module,
      PKCS11_TOKEN_LABEL: tokenLabel,
      PKCS11_PIN: token.pin,
      // Where a local keyring would go: it must never appear.
      OAUTH_KEYRING_FILE: join(keyDir, 'identity-oauth.key'),
    },
  });
}

async function jwksKids(service: RunningService): Promise<string[]> {
  const discovery = await fetch(`${service.url}/oauth/.well-known/openid-configuration`);
  expect(discovery.status).toBe(200);
  // The advertised URL is on GATEWAY_PUBLIC_URL's origin; its path is served here too.
  const { jwks_uri: jwksUri } = (await discovery.json()) as { jwks_uri: string };
  const res = await fetch(new URL(new URL(jwksUri).pathname, service.url));
  expect(res.status).toBe(200);
  return ((await res.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
}

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'identity-pkcs11-'));
  token = await createSoftHsmToken(processSoftHsmConfig(), 'identity');
  other = await createSoftHsmToken(processSoftHsmConfig(), 'identity-other', token.pin);
  harness = await ServiceHarness.start({
    schemaPrefix: 'identity_pkcs11',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

describe('identity with its KEK in a PKCS#11 token (SoftHSM2)', () => {
  it('seals its signing keys under a token KEK, writes no key file, and opens the same keys after a restart', async () => {
    const first = await start(token.tokenLabel);
    const kids = await jwksKids(first);
    expect(kids.length).toBeGreaterThan(0);
    expect(existsSync(join(keyDir, 'identity-oauth.key'))).toBe(false);
    await first.close();

    const again = await start(token.tokenLabel);
    expect(await jwksKids(again)).toEqual(kids);
    await again.close();
  }, 60_000);

  it('refuses to start on a token without that KEK while keys sealed under it exist', async () => {
    await expect(start(other.tokenLabel)).rejects.toThrow(/authorization server keys sealed under it are stored/);
  }, 60_000);
});
