import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { EnvelopeCipher, LocalKeyProvider } from '@context-gateway/crypto';
import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { PrismaClient } from '../generated/prisma/client.js';
import { OAuthKeyStore } from './oauth-keys.js';
import { OAuthKeysRepository } from './oauth-keys.repository.js';

// The authorization server's keys against real Postgres and a real keyring file.
let schema: TestSchema;
let db: PrismaClient;
let dir: string;
let store: OAuthKeyStore;
/** The same keys with a one-minute activation delay. */
let delayed: OAuthKeyStore;
const clock = new TestClock();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'identity-keys-'));
  schema = await createTestSchema({
    prefix: 'identity_oauth_keys',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  db = new PrismaClient({ adapter: createPrismaAdapter(schema.pool, schema.schema) });
  const keyring = await LocalKeyProvider.open({ path: join(dir, 'master.key'), createIfMissing: true });
  const cipher = new EnvelopeCipher(keyring);
  store = new OAuthKeyStore(new OAuthKeysRepository(db), cipher, clock);
  delayed = new OAuthKeyStore(new OAuthKeysRepository(db), cipher, clock, 60_000);
});

afterAll(async () => {
  await db?.$disconnect();
  await schema?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('authorization server keys', () => {
  it('creates one generation however many replicas start at once', async () => {
    const loaded = await Promise.all([store.load(), store.load(), store.load()]);
    expect(await db.oAuthKey.count()).toBe(3); // ES256, RS256, cookie
    const kids = loaded.map((keys) => keys.jwks.map((k) => k.kid).sort());
    expect(kids[1]).toEqual(kids[0]);
    expect(kids[2]).toEqual(kids[0]);
    expect(loaded[0]?.jwks.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(loaded[0]?.cookieKeys).toHaveLength(1);
    // Each replica generates its own RSA key before it takes the lock: slow on a busy machine.
  }, 60_000);

  it('keeps no private key readable in the database', async () => {
    const { rows } = await schema.pool.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM oauth_keys k');
    for (const { row } of rows) {
      expect(row).not.toMatch(/"d"\s*:/);
      expect(row).not.toMatch(/"p"\s*:/);
    }
  });

  it('refuses a sealed key copied onto another key id', async () => {
    const [a, b] = await db.oAuthKey.findMany({ where: { use: 'sig' } });
    await db.oAuthKey.update({
      where: { kid: b?.kid ?? '' },
      data: { ciphertext: a?.ciphertext, wrappedDataKey: a?.wrappedDataKey },
    });
    await expect(store.load()).rejects.toMatchObject({ code: 'decryption_failed' });
    await db.oAuthKey.deleteMany();
  });

  it('rotates: the new generation signs first, the previous one stays published, older ones retire', async () => {
    const first = await store.load();
    clock.advance(1_000);
    await store.rotate();
    const second = await store.load();
    expect(second.jwks).toHaveLength(4);
    // Newest first: the provider signs with the first key of each algorithm.
    expect(second.jwks.slice(0, 2).map((k) => k.kid)).not.toEqual(expect.arrayContaining(first.jwks.map((k) => k.kid)));
    expect(
      second.jwks
        .slice(2)
        .map((k) => k.kid)
        .sort(),
    ).toEqual(first.jwks.map((k) => k.kid).sort());

    clock.advance(1_000);
    const { retired } = await store.rotate();
    expect(retired.sort()).toEqual([...first.jwks.map((k) => k.kid ?? ''), ...(await retiredCookieKids())].sort());
    const third = await store.load();
    expect(third.jwks).toHaveLength(4);
    expect(third.jwks.map((k) => k.kid)).not.toEqual(expect.arrayContaining([first.jwks[0]?.kid]));
    expect(third.cookieKeys).toHaveLength(2);
  });
});

describe('key activation', () => {
  it('publishes a rotated-in key first and signs with it only after the delay', async () => {
    clock.advance(120_000);
    const before = await delayed.load();
    const signing = (keys: typeof before, alg: string) => keys.jwks.find((k) => k.alg === alg)?.kid;
    await delayed.rotate();
    const published = await delayed.load();
    // The new keys are in the JWKS already, but the previous ones still sign.
    expect(published.jwks.length).toBeGreaterThan(before.jwks.length - 1);
    expect(signing(published, 'ES256')).toBe(signing(before, 'ES256'));
    expect(signing(published, 'RS256')).toBe(signing(before, 'RS256'));
    expect(published.cookieKeys[0]).toBe(before.cookieKeys[0]);
    clock.advance(61_000);
    const active = await delayed.load();
    expect(signing(active, 'ES256')).not.toBe(signing(before, 'ES256'));
    expect(active.jwks.map((k) => k.kid)).toEqual(expect.arrayContaining([signing(before, 'ES256')]));
    expect(active.cookieKeys[0]).not.toBe(before.cookieKeys[0]);
  });
});

async function retiredCookieKids(): Promise<string[]> {
  const rows = await db.oAuthKey.findMany({ where: { use: 'cookie', retiredAt: { not: null } } });
  return rows.map((r) => r.kid);
}
