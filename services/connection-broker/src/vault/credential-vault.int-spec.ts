import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { EnvelopeCipher, LocalKeyProvider, WrappedKey } from '@context-gateway/crypto';
import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '@context-gateway/database/testing';
import { createLogger } from '@context-gateway/observability';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { ConnectionsRepository } from '../connections/connections.repository.js';
import { loadEnv } from '../env.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { type ConnectionOwner, CredentialVault } from './credential-vault.js';
import { moveLegacyKeys } from './legacy-keys.js';

// The vault against a real schema (broker migrations) and real key files: the wrapped data
// keys live outside the database, so a real pg_dump taken before a deletion, restored after
// it, holds a credential nothing can open; keys an older version kept in the table move out.
const run = promisify(execFile);
const migrationsDir = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
const logger = createLogger({ service: 'broker-vault-test', level: 'silent' });
let db: TestSchema;
let prisma: PrismaClient;
let repo: ConnectionsRepository;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'broker-vault-'));
  db = await createTestSchema({ prefix: 'broker_vault', migrationsDir });
  prisma = new PrismaClient({ adapter: createPrismaAdapter(db.pool, db.schema) });
  repo = new ConnectionsRepository(prisma);
});

afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

const envFor = (keys: string) => loadEnv({ DATABASE_URL: db.url, MASTER_KEY_FILE: join(keys, 'master.key') });

async function insertConnection(vault: CredentialVault, owner: ConnectionOwner, token: string): Promise<void> {
  const sealed = await vault.sealNew(owner, {
    accessToken: token,
    refreshToken: `${token}-refresh`,
    tokenType: 'Bearer',
  });
  await repo.transaction((tx) =>
    repo.create(tx, {
      id: owner.connectionId,
      orgId: owner.orgId,
      userId: owner.userId,
      integration: `demo-${owner.connectionId.slice(0, 8)}`,
      authType: 'oauth2',
      sourceScopes: [],
      dataKeyId: sealed.dataKeyId,
      credentialCiphertext: sealed.ciphertext,
      accessExpiresAt: null,
    }),
  );
}

const ownerOf = (): ConnectionOwner => ({ orgId: randomUUID(), userId: randomUUID(), connectionId: randomUUID() });

describe('CredentialVault key store', () => {
  it('a pg_dump taken before a deletion, plus the key store after it, opens no token', async () => {
    const keys = join(dir, 'dump');
    const vault = await CredentialVault.open(envFor(keys), () => repo.countSealedCredentials());
    const owner = ownerOf();
    await insertConnection(vault, owner, 'tok-secret-1');
    const row = await repo.findById(owner.connectionId);
    expect(row?.wrappedDataKey).toBeNull(); // nothing key-shaped in the database
    expect(
      await vault.open(owner, {
        dataKeyId: row?.dataKeyId ?? '',
        ciphertext: row?.credentialCiphertext ?? new Uint8Array(),
      }),
    ).toMatchObject({
      accessToken: 'tok-secret-1',
    });

    // A real dump of the broker's schema, as a backup job would take it.
    const dumpFile = join(dir, 'before.sql');
    const { stdout } = await run('pg_dump', ['--no-owner', '--schema', db.schema, TEST_DATABASE_URL], {
      maxBuffer: 64 * 1024 * 1024,
    });
    await writeFile(dumpFile, stdout);
    expect(stdout).toContain(owner.connectionId);

    // The deletion, as ConnectionsService.remove does it: key file first, then the row.
    await vault.destroy(owner, row?.dataKeyId ?? '');
    await repo.transaction((tx) => repo.shred(tx, owner.connectionId, new Date()));

    // Restore the dump into a fresh database schema and read the row back from it.
    const restored = `${db.schema}_restored`;
    const sql = (await readFile(dumpFile, 'utf8')).replaceAll(db.schema, restored);
    const psql = execFile('psql', ['-q', '-v', 'ON_ERROR_STOP=1', TEST_DATABASE_URL]);
    psql.stdin?.end(sql);
    await new Promise<void>((resolve, reject) =>
      psql.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql ${code}`)))),
    );
    try {
      const old = await db.pool.query<{ data_key_id: string; credential_ciphertext: Buffer }>(
        `SELECT data_key_id::text, credential_ciphertext FROM "${restored}".connections WHERE id = $1`,
        [owner.connectionId],
      );
      expect(old.rows[0]?.credential_ciphertext).toBeInstanceOf(Buffer);
      // The same vault (same KEK, same key store) a restarted broker would use: the key is gone.
      const again = await CredentialVault.open(envFor(keys), () => Promise.resolve(1));
      await expect(
        again.open(owner, {
          dataKeyId: old.rows[0]?.data_key_id ?? '',
          ciphertext: old.rows[0]?.credential_ciphertext ?? Buffer.alloc(0),
        }),
      ).rejects.toMatchObject({ code: 'key_destroyed' });
      expect(old.rows[0]?.credential_ciphertext.toString('latin1')).not.toContain('tok-secret-1');
      again.close();
    } finally {
      await db.pool.query(`DROP SCHEMA IF EXISTS "${restored}" CASCADE`);
    }
    vault.close();
  });

  it('moves wrapped keys an older version kept in the table into the key store, once', async () => {
    const keys = join(dir, 'legacy');
    // The pre-#12 layout: one shared keyring (master.key), the wrapped key in the row.
    const shared = await LocalKeyProvider.open({ path: join(keys, 'master.key'), createIfMissing: true });
    const owner = ownerOf();
    const { key, wrapped } = await new EnvelopeCipher(shared).generateDataKey({
      org: owner.orgId,
      user: owner.userId,
      connection: owner.connectionId,
    });
    const ciphertext = key.encrypt(Buffer.from(JSON.stringify({ accessToken: 'legacy-tok', tokenType: 'Bearer' })), {
      org: owner.orgId,
      user: owner.userId,
      connection: owner.connectionId,
      purpose: 'source-credential',
    });
    shared.close();
    await db.pool.query(
      `INSERT INTO connections (id, org_id, user_id, integration, wrapped_data_key, credential_ciphertext, updated_at)
       VALUES ($1, $2, $3, 'legacy', $4, $5, now())`,
      [owner.connectionId, owner.orgId, owner.userId, wrapped.encode(), ciphertext],
    );

    // Two replicas starting together: the shared keyring is adopted, each row moved exactly once.
    const [a, b] = await Promise.all([
      CredentialVault.open(envFor(keys), () => repo.countSealedCredentials()),
      CredentialVault.open(envFor(keys), () => repo.countSealedCredentials()),
    ]);
    const moved = await Promise.all([moveLegacyKeys(a, repo, logger), moveLegacyKeys(b, repo, logger)]);
    expect(moved[0] + moved[1]).toBe(1);
    const row = await repo.findById(owner.connectionId);
    expect(row?.wrappedDataKey).toBeNull();
    expect(await readdir(join(keys, 'connection-broker-data-keys'))).toEqual([`${row?.dataKeyId}.key`]);
    expect(
      await a.open(owner, {
        dataKeyId: row?.dataKeyId ?? '',
        ciphertext: row?.credentialCiphertext ?? Buffer.alloc(0),
      }),
    ).toMatchObject({
      accessToken: 'legacy-tok',
    });
    expect(await moveLegacyKeys(a, repo, logger)).toBe(0);
    a.close();
    b.close();
  });

  it('the key files of another service do not open this one’s credentials', async () => {
    const keys = join(dir, 'isolation');
    const vault = await CredentialVault.open(envFor(keys), () => Promise.resolve(0));
    const owner = ownerOf();
    await insertConnection(vault, owner, 'tok-isolated');
    const row = await repo.findById(owner.connectionId);
    // personal-server's keyring in the same folder (its default name): a different KEK.
    const records = await LocalKeyProvider.open({ path: join(keys, 'personal-server.keyring'), createIfMissing: true });
    const wrappedFile = await readFile(join(keys, 'connection-broker-data-keys', `${row?.dataKeyId}.key`), 'utf8');
    await expect(
      records.unwrapKey(WrappedKey.decode(wrappedFile.trim()), {
        org: owner.orgId,
        user: owner.userId,
        connection: owner.connectionId,
      }),
    ).rejects.toMatchObject({ code: 'decryption_failed' });
    records.close();
    vault.close();
  });
});
