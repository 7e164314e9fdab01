import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { systemClock } from '@context-gateway/clock';
import { TestClock } from '@context-gateway/clock/testing';
import { DataKey, grantChallenge } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { answerRpc, type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import {
  GrantRecordSchema,
  type QueryRecordsRequest,
  QueryRecordsRequestSchema,
  RecordInputSchema,
  RevokeGrantRequestSchema,
  rpc,
  WriteRecordsRequestSchema,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestApplicationContext } from '@nestjs/common';
import type { PoolClient } from 'pg';

import { ConnectionsService } from '../connections/connections.service.js';
import { applyRebalance, planRebalance } from '../directory/rebalance.js';
import { rendezvousShard } from '../directory/rendezvous.js';
import { envSchema } from '../env.js';
import { GrantsModule } from '../grants/grants.module.js';
import { GrantsService } from '../grants/grants.service.js';
import { countStoredDataKeys } from '../keys/keys.module.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { startShardServer } from '../testing/shard-context.js';
import { encodeCursor } from './cursor.js';
import { RecordsModule } from './records.module.js';
import {
  FIND_FOR_WRITE_SQL,
  recordKey,
  RecordsRepository,
  type RecordWrite,
  STORED_KEYS_SQL,
} from './records.repository.js';
import { RecordsService } from './records.service.js';

// The shard's storage and query path against real Postgres, with real key files: two
// shard processes over one schema, each answering its NATS subjects, as the stack runs them.
const migrationsDir = new URL('../../prisma/migrations', import.meta.url).pathname;
let schema: TestSchema;
let keyDir: string;
let natsServer: PrivateNats;
let nc: NatsConnection;
const shards: INestApplicationContext[] = [];

async function startShard(shard: number): Promise<INestApplicationContext> {
  const app = await startShardServer(
    schema,
    nc,
    { SHARD_ID: String(shard), SHARD_COUNT: '2', MASTER_KEY_FILE: join(keyDir, 'master.key') },
    [RecordsModule, GrantsModule],
  );
  shards.push(app);
  return app;
}

/** A user the directory places on `shard` (rendezvous over 2 shards). */
function userOn(shard: number): string {
  for (;;) {
    const id = randomUUID();
    if (rendezvousShard(id, 2) === shard) return id;
  }
}

const ORG = randomUUID();
const APP_PLAYLISTS = randomUUID();
const APP_HISTORY = randomUUID();

let records: RecordsService;
let grants: GrantsService;
let connections: ConnectionsService;
let otherShardRecords: RecordsService;

function playlist(n: number, name = `List ${n}`) {
  return create(RecordInputSchema, {
    type: 'media.playlist',
    externalId: `pl-${n}`,
    dataJson: Buffer.from(JSON.stringify({ source: 'spotify', id: `pl-${n}`, name, public: n % 2 === 0 })),
    sourceUpdatedAt: timestampFromDate(new Date(Date.UTC(2026, 0, 1, 0, 0, n))),
  });
}

function play(n: number) {
  return create(RecordInputSchema, {
    type: 'media.play_event',
    externalId: `play-${n}`,
    dataJson: Buffer.from(
      JSON.stringify({
        source: 'spotify',
        trackId: `t${n}`,
        title: `Song ${n}`,
        kind: 'music',
        playedAt: '2026-11-01T10:00:00Z',
      }),
    ),
  });
}

async function write(userId: string, connectionId: string, inputs: ReturnType<typeof playlist>[]) {
  return records.write(
    create(WriteRecordsRequestSchema, {
      userId,
      connectionId,
      integration: 'spotify',
      records: inputs,
      syncedAt: timestampFromDate(new Date()),
    }),
  );
}

/** A connection on shard 0 with one record written, and its personal server. */
async function storedConnection(): Promise<{ connection: string; ps: string }> {
  const connection = randomUUID();
  await write(userOn(0), connection, [playlist(1)]);
  const { rows } = await schema.pool.query<{ personal_server_id: string }>(
    'SELECT personal_server_id FROM connections WHERE id = $1',
    [connection],
  );
  return { connection, ps: rows[0]!.personal_server_id };
}

/** A new record's row as RecordsRepository.insertNew takes it, with stand-in bytes. */
function rowWrite(externalId: string, version: bigint, sourceUpdatedAt = new Date(0)): RecordWrite {
  return {
    id: randomUUID(),
    type: 'media.playlist',
    externalId,
    ciphertext: Buffer.from(`ciphertext of ${externalId}`),
    bodyDigest: Buffer.from(`digest of ${externalId}`.padEnd(32, '.')),
    sourceUpdatedAt,
    deleted: false,
    version,
  };
}

/** What `client` sends: one entry per round trip, its statements' first words `+`-joined. */
function watchStatements(client: PoolClient) {
  const statements = jest.spyOn(client, 'query');
  const sent = () =>
    statements.mock.calls.map(([config]) => {
      const text = typeof config === 'string' ? config : (config as { text: string }).text;
      return text
        .split(';')
        .map((statement) => statement.trim().split(/\s/)[0]!)
        .join('+');
    });
  return { statements, sent };
}

/** Every person's passkey, as identity answers for it here (the signatures are real). */
const passkey = new SoftAuthenticator();

/** A grant the person signed with their passkey (passkeys.int-spec.ts tests the signatures). */
async function grant(userId: string, connectionId: string, applicationId: string, scopes: string[], orgId = ORG) {
  const record = create(GrantRecordSchema, {
    grantId: randomUUID(),
    orgId,
    applicationId,
    userId,
    connectionId,
    integration: 'spotify',
    scopes,
  });
  const nonce = randomUUID();
  const notAfter = new Date(Date.now() + 60_000);
  const challenge = grantChallenge({ ...record, nonce, notAfter });
  return grants.register(record, {
    $typeName: 'contextgateway.personalserver.v1.PasskeyProof',
    nonce,
    notAfter: timestampFromDate(notAfter),
    assertionJson: JSON.stringify(passkey.assert(challenge, 'http://localhost:8080')),
  });
}

function q(
  connectionId: string,
  applicationId: string,
  extra: Partial<Omit<QueryRecordsRequest, '$typeName' | '$unknown'>> = {},
) {
  return create(QueryRecordsRequestSchema, { orgId: ORG, applicationId, connectionId, limit: 100, ...extra });
}

async function page(
  connectionId: string,
  applicationId: string,
  extra: Partial<Omit<QueryRecordsRequest, '$typeName' | '$unknown'>> = {},
  via = records,
) {
  const result = await via.query(q(connectionId, applicationId, extra));
  return {
    ...result,
    records: JSON.parse(result.recordsJson.toString('utf8')) as Array<{
      id: string;
      type: string;
      externalId: string;
      deleted: boolean;
      data: Record<string, unknown> | null;
    }>,
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return AppError.from(error).code;
  }
}

beforeAll(async () => {
  schema = await createTestSchema({ prefix: 'ps_records', migrationsDir });
  keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-keys-'));
  // A nats-server of this file's own: the identity stub below answers a catalogued subject,
  // which another file's stub on a shared server would answer too (Jest runs files in parallel).
  natsServer = await startPrivateNats();
  nc = await connect({ servers: natsServer.url });
  answerRpc(nc, rpc.identity.listUserPasskeys, () => ({
    passkeys: [{ credentialId: passkey.credentialId, publicKey: passkey.publicKey }],
  }));
  const shard0 = await startShard(0);
  const shard1 = await startShard(1);
  records = shard0.get(RecordsService);
  grants = shard0.get(GrantsService);
  connections = shard0.get(ConnectionsService);
  otherShardRecords = shard1.get(RecordsService);
});

afterAll(async () => {
  await Promise.all(shards.map((s) => s.close()));
  await nc?.drain();
  await natsServer?.stop();
  await schema?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

describe('personal-server storage and query path', () => {
  it('stores records encrypted and gives each app only the types its scopes cover', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await grant(user, connection, APP_HISTORY, ['spotify:read:recently_played']);
    const counts = await write(user, connection, [playlist(1), playlist(2), play(1)]);
    expect(counts).toEqual({ written: 3, unchanged: 0, tombstoned: 0 });

    const stored = await schema.pool.query<{ ciphertext: Buffer }>(
      'SELECT ciphertext FROM records WHERE connection_id = $1',
      [connection],
    );
    for (const row of stored.rows) expect(row.ciphertext.toString('latin1')).not.toContain('List');

    const lists = await page(connection, APP_PLAYLISTS);
    expect(lists.records.map((r) => r.externalId).sort()).toEqual(['pl-1', 'pl-2']);
    expect(lists.records[0]!.data).toMatchObject({ source: 'spotify', name: expect.stringMatching(/^List/) });
    expect(lists.syncedAt).toBeInstanceOf(Date);

    const history = await page(connection, APP_HISTORY);
    expect(history.records.map((r) => r.type)).toEqual(['media.play_event']);

    expect(await codeOf(records.query(q(connection, APP_HISTORY, { type: 'media.playlist' })))).toBe(
      'scope_not_granted',
    );
    expect(await codeOf(records.query(q(connection, randomUUID())))).toBe('connection_not_found');
    // Same app id, another org: no grant there.
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS, { orgId: randomUUID() })))).toBe(
      'connection_not_found',
    );

    // The gateway's policy allowed only some types: an untyped query is limited to them.
    const both = randomUUID();
    await grant(user, connection, both, ['spotify:read:playlists', 'spotify:read:recently_played']);
    expect((await page(connection, both)).records).toHaveLength(3);
    expect((await page(connection, both, { policyTypes: ['media.play_event'] })).records.map((r) => r.type)).toEqual([
      'media.play_event',
    ]);

    const projected = await page(connection, APP_PLAYLISTS, { fields: ['name'], type: 'media.playlist' });
    expect(projected.records.every((r) => Object.keys(r.data!).join() === 'name')).toBe(true);
  });

  it('upserts idempotently: a re-sync changes nothing, an older copy never wins', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2)]);
    const before = await schema.pool.query(
      'SELECT id, version FROM records WHERE connection_id = $1 ORDER BY external_id',
      [connection],
    );

    expect(await write(user, connection, [playlist(1), playlist(2)])).toEqual({
      written: 0,
      unchanged: 2,
      tombstoned: 0,
    });
    const stale = playlist(1, 'Old name');
    stale.sourceUpdatedAt = timestampFromDate(new Date(Date.UTC(2025, 0, 1)));
    expect(await write(user, connection, [stale])).toEqual({ written: 0, unchanged: 1, tombstoned: 0 });
    expect(await write(user, connection, [playlist(1, 'Renamed')])).toEqual({
      written: 1,
      unchanged: 0,
      tombstoned: 0,
    });

    const after = await schema.pool.query(
      'SELECT id, version FROM records WHERE connection_id = $1 ORDER BY external_id',
      [connection],
    );
    expect(after.rows.map((r) => r.id)).toEqual(before.rows.map((r) => r.id)); // same records, updated in place
    expect((await page(connection, APP_PLAYLISTS)).records.find((r) => r.externalId === 'pl-1')!.data!.name).toBe(
      'Renamed',
    );
  });

  it('tells unchanged bodies by their keyed digest, and by decrypting rows written before digests existed', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2), playlist(3)]);
    const digests = async () =>
      new Map(
        (
          await schema.pool.query<{ external_id: string; body_digest: Buffer | null }>(
            'SELECT external_id, body_digest FROM records WHERE connection_id = $1',
            [connection],
          )
        ).rows.map((r) => [r.external_id, r.body_digest]),
      );
    const first = await digests();
    for (const digest of first.values()) expect(digest).toHaveLength(32);
    // Keyed and bound to the item: no two items' digests are equal, and none is a plain hash of the body.
    expect(new Set([...first.values()].map((d) => d?.toString('hex'))).size).toBe(3);

    // A row from before digests: compared by decrypting it, and given a digest when next written.
    await schema.pool.query("UPDATE records SET body_digest = NULL WHERE connection_id = $1 AND external_id = 'pl-2'", [
      connection,
    ]);
    // A digest that no longer matches (the body was changed behind our back) counts as changed.
    await schema.pool.query(
      "UPDATE records SET body_digest = '\\x00'::bytea WHERE connection_id = $1 AND external_id = 'pl-3'",
      [connection],
    );
    expect(await write(user, connection, [playlist(1), playlist(2), playlist(3)])).toEqual({
      written: 1,
      unchanged: 2,
      tombstoned: 0,
    });
    expect((await digests()).get('pl-2')).toBeNull();
    expect((await digests()).get('pl-3')).toEqual(first.get('pl-3'));
    expect(await write(user, connection, [playlist(1), playlist(2, 'Renamed'), playlist(3)])).toEqual({
      written: 1,
      unchanged: 2,
      tombstoned: 0,
    });
    const renamed = (await digests()).get('pl-2');
    expect(renamed).toHaveLength(32);
    expect(renamed).not.toEqual(first.get('pl-2'));
  });

  it('stores each row of a batch at its own offsets when a tombstone sits between changed records', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2), playlist(3)]);
    const gone = create(RecordInputSchema, {
      type: 'media.playlist',
      externalId: 'pl-2',
      deleted: true,
      sourceUpdatedAt: timestampFromDate(new Date()),
    });
    // One upsert: [changed, tombstone (empty ciphertext, null digest), changed].
    expect(await write(user, connection, [playlist(1, 'One'), gone, playlist(3, 'Three')])).toEqual({
      written: 2,
      unchanged: 0,
      tombstoned: 1,
    });
    const { rows } = await schema.pool.query<{ external_id: string; ciphertext: Buffer; body_digest: Buffer | null }>(
      'SELECT external_id, ciphertext, body_digest FROM records WHERE connection_id = $1 ORDER BY external_id',
      [connection],
    );
    expect(rows.map((r) => [r.external_id, r.ciphertext.length > 0, r.body_digest?.length ?? null])).toEqual([
      ['pl-1', true, 32],
      ['pl-2', false, null],
      ['pl-3', true, 32],
    ]);
    expect(rows[2]!.body_digest).not.toEqual(rows[0]!.body_digest);
    // The second changed row decrypts (its ciphertext came from the right offset) ...
    const names = (await page(connection, APP_PLAYLISTS)).records.map((r) => [r.externalId, r.data?.name]);
    expect(names).toEqual([
      ['pl-1', 'One'],
      ['pl-3', 'Three'],
    ]);
    // ... and its digest is its own: sent again, it is unchanged by digest (not by decrypting).
    expect(await write(user, connection, [playlist(3, 'Three')])).toEqual({ written: 0, unchanged: 1, tombstoned: 0 });
    expect(await write(user, connection, [playlist(1, 'One')])).toEqual({ written: 0, unchanged: 1, tombstoned: 0 });
  });

  it('copies a batch of new records in when the last one, under 30 s ago, was all new; one known record sends the batch back to the INSERT', async () => {
    const { connection, ps } = await storedConnection();
    // The shard's repository over the same pool, with a clock this test moves.
    const clock = new TestClock();
    const repository = new RecordsRepository(schema.pool, clock);
    const client = await schema.pool.connect();
    const { statements, sent } = watchStatements(client);
    try {
      await client.query('BEGIN');
      // Nothing known of the connection yet: the INSERT, which finds the batch all new.
      statements.mockClear();
      await repository.insertNew(client, ps, connection, [rowWrite('z', 9n, new Date(0))]);
      expect(sent()).toEqual(['INSERT']);

      // The next batch (an initial sync's, seconds later) is copied in, between a savepoint
      // and its release in one round trip: the connection's update that follows is the
      // transaction's own.
      clock.advance(29_000);
      // Before 1900, and in the future, to the millisecond.
      const copied = [
        rowWrite('a', 10n, new Date(Date.UTC(1899, 11, 31, 23, 59, 59, 7))),
        rowWrite('b', 11n, new Date(Date.UTC(2031, 0, 2, 3, 4, 5, 999))),
      ];
      statements.mockClear();
      expect(await repository.insertNew(client, ps, connection, copied)).toEqual(new Set(copied.map(recordKey)));
      expect(sent()).toEqual(['SAVEPOINT+COPY+RELEASE']);

      // `a` again under a fresh id (29 s after the COPY, which counts as all new): the COPY
      // is refused whole, the INSERT takes only `c`.
      clock.advance(29_000);
      const mixed = [rowWrite('c', 12n, new Date(0)), rowWrite('a', 13n, new Date(0))];
      statements.mockClear();
      expect(await repository.insertNew(client, ps, connection, mixed)).toEqual(new Set([recordKey(mixed[0]!)]));
      expect(sent()).toEqual(['SAVEPOINT+COPY+RELEASE', 'ROLLBACK', 'RELEASE', 'INSERT', 'SELECT']);
      // A batch that was not all new is not tried by COPY next time.
      statements.mockClear();
      await repository.insertNew(client, ps, connection, [rowWrite('d', 14n, new Date(0))]);
      expect(sent()).toEqual(['INSERT']);
      // All new again, but the next batch comes 30 s later (a periodic sync, mostly known
      // items): not guessed, so Postgres logs no refused COPY naming the person's items.
      clock.advance(30_000);
      statements.mockClear();
      await repository.insertNew(client, ps, connection, [rowWrite('e', 15n, new Date(0))]);
      expect(sent()).toEqual(['INSERT']);

      const stored = await client.query<{
        id: string;
        external_id: string;
        ciphertext: Buffer;
        body_digest: Buffer;
        source_ms: string;
        version: string;
        updated: boolean;
        deleted_at: Date | null;
        personal_server_id: string;
      }>(
        `SELECT id, external_id, ciphertext, body_digest, (extract(epoch FROM source_updated_at) * 1000)::bigint::text AS source_ms,
                version::text, updated_at >= now() AS updated, deleted_at, personal_server_id
           FROM records WHERE connection_id = $1 AND external_id IN ('a', 'b', 'c') ORDER BY external_id`,
        [connection],
      );
      // As the INSERT writes them: `a` keeps its first id, times to the millisecond, clocks set.
      expect(stored.rows).toEqual(
        [copied[0]!, copied[1]!, mixed[0]!].map((r) => ({
          id: r.id,
          external_id: r.externalId,
          ciphertext: r.ciphertext,
          body_digest: r.bodyDigest,
          source_ms: String(r.sourceUpdatedAt.getTime()),
          version: String(r.version),
          updated: true,
          deleted_at: null,
          personal_server_id: ps,
        })),
      );

      // An id collision is not a known item: the COPY's refusal fails the write (the INSERT
      // would refuse it too), whatever the guess.
      statements.mockClear();
      await expect(
        repository.insertNew(client, ps, connection, [{ ...rowWrite('f', 16n, new Date(0)), id: copied[0]!.id }]),
      ).rejects.toMatchObject({ code: '23505', constraint: 'records_pkey' });
      expect(sent()).toEqual(['SAVEPOINT+COPY+RELEASE']);
    } finally {
      await client.query('ROLLBACK');
      statements.mockRestore();
      client.release();
    }
  });

  /**
   * A granted connection whose 40 playlists were written through the other shard: this one
   * holds no "all new" guess for it, as for a re-sync minutes after the first.
   */
  async function storedThroughOtherShard() {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    const first = Array.from({ length: 40 }, (_, i) => playlist(i + 1));
    await otherShardRecords.write(
      create(WriteRecordsRequestSchema, {
        userId: user,
        connectionId: connection,
        integration: 'spotify',
        records: first,
      }),
    );
    return { user, connection, first };
  }

  it('a re-sync encrypts only its new and changed records: items the connection has are not sealed as new', async () => {
    const { user, connection, first } = await storedThroughOtherShard();
    const encrypt = jest.spyOn(DataKey.prototype, 'encrypt');
    try {
      const again = [...first.slice(0, 39), playlist(40, 'Renamed'), playlist(41)];
      expect(await write(user, connection, again)).toEqual({ written: 2, unchanged: 39, tombstoned: 0 });
      // The renamed record under its stored id and the new one: nothing sealed for the 39 unchanged.
      expect(encrypt).toHaveBeenCalledTimes(2);
    } finally {
      encrypt.mockRestore();
    }
    const listed = (await page(connection, APP_PLAYLISTS)).records;
    expect(listed).toHaveLength(41);
    expect(listed.find((r) => r.externalId === 'pl-40')!.data!.name).toBe('Renamed');
    expect(listed.find((r) => r.externalId === 'pl-41')!.data!.name).toBe('List 41');
    expect(listed.find((r) => r.externalId === 'pl-7')!.data!.name).toBe('List 7');
  });

  it('an item found stored before the lock whose row is gone under it is sealed there, under a new id and version', async () => {
    const { user, connection, first } = await storedThroughOtherShard();
    const rows = async () =>
      new Map(
        (
          await schema.pool.query('SELECT external_id, id, version::int AS v FROM records WHERE connection_id = $1', [
            connection,
          ])
        ).rows.map((r) => [r.external_id as string, { id: r.id as string, v: r.v as number }]),
      );
    const before = await rows();
    const maxBefore = Math.max(...[...before.values()].map((r) => r.v));
    // Defensive: nothing the service does removes a row of a live type between the lookup and
    // the lock; rows deleted in SQL right after the real lookup stand in for it.
    const repository = shards[0]!.get(RecordsRepository);
    const lookup = repository.storedKeys.bind(repository);
    const storedKeys = jest.spyOn(repository, 'storedKeys').mockImplementationOnce(async (connectionId, items) => {
      const found = await lookup(connectionId, items);
      expect(found.size).toBe(40);
      await schema.pool.query("DELETE FROM records WHERE connection_id = $1 AND external_id IN ('pl-5', 'pl-6')", [
        connectionId,
      ]);
      return found;
    });
    const encrypt = jest.spyOn(DataKey.prototype, 'encrypt');
    try {
      expect(await write(user, connection, [...first, playlist(41)])).toEqual({
        written: 3,
        unchanged: 38,
        tombstoned: 0,
      });
      // pl-41 as new before the lock, pl-5 and pl-6 under it.
      expect(encrypt).toHaveBeenCalledTimes(3);
    } finally {
      encrypt.mockRestore();
      storedKeys.mockRestore();
    }
    const after = await rows();
    expect(after.size).toBe(41);
    for (const id of ['pl-5', 'pl-6', 'pl-41']) expect(after.get(id)!.v).toBeGreaterThan(maxBefore);
    expect(after.get('pl-5')!.id).not.toBe(before.get('pl-5')!.id);
    expect(after.get('pl-6')!.id).not.toBe(before.get('pl-6')!.id);
    expect(new Set([...after.values()].map((r) => r.v)).size).toBe(41);
    const { rows: last } = await schema.pool.query<{ v: number }>(
      'SELECT last_version::int AS v FROM connections WHERE id = $1',
      [connection],
    );
    expect(last[0]!.v).toBe(Math.max(...[...after.values()].map((r) => r.v)));
    const listed = (await page(connection, APP_PLAYLISTS)).records;
    expect(listed).toHaveLength(41);
    expect(listed.find((r) => r.externalId === 'pl-5')!.data!.name).toBe('List 5');
    expect(listed.find((r) => r.externalId === 'pl-6')!.data!.name).toBe('List 6');
  });

  it('a write whose new items all went in beside stored ones is not remembered as all new: the next one looks up', async () => {
    const { user, connection, first } = await storedThroughOtherShard();
    expect(await write(user, connection, [...first, playlist(41)])).toEqual({
      written: 1,
      unchanged: 40,
      tombstoned: 0,
    });
    const encrypt = jest.spyOn(DataKey.prototype, 'encrypt');
    try {
      // Guessed all new, the 41 stored items would be sealed again as new records.
      expect(await write(user, connection, [...first, playlist(41), playlist(42)])).toEqual({
        written: 1,
        unchanged: 41,
        tombstoned: 0,
      });
      expect(encrypt).toHaveBeenCalledTimes(1);
    } finally {
      encrypt.mockRestore();
    }
  });

  it('looks up only live items: deletions are never sealed, so neither counted nor asked for', async () => {
    const { user, connection, first } = await storedThroughOtherShard();
    const gone = (n: number) =>
      create(RecordInputSchema, {
        type: 'media.playlist',
        externalId: `pl-${n}`,
        deleted: true,
        sourceUpdatedAt: timestampFromDate(new Date()),
      });
    const storedKeys = jest.spyOn(shards[0]!.get(RecordsRepository), 'storedKeys');
    try {
      // 36 deletions and 4 live items: under STORED_LOOKUP_MIN live ones, no lookup's worth.
      const batch = [...Array.from({ length: 36 }, (_, i) => gone(i + 1)), ...first.slice(36)];
      expect(await write(user, connection, batch)).toEqual({ written: 0, unchanged: 4, tombstoned: 36 });
      expect(storedKeys.mock.calls[0]![1].map((item) => item.externalId)).toEqual(['pl-37', 'pl-38', 'pl-39', 'pl-40']);
      expect(await storedKeys.mock.results[0]!.value).toEqual(new Set());
    } finally {
      storedKeys.mockRestore();
    }
  });

  it('a batch whose other items were stored is not guessed all new: the next one goes to the INSERT, not a COPY', async () => {
    const { connection, ps } = await storedConnection();
    const repository = new RecordsRepository(schema.pool, new TestClock());
    const client = await schema.pool.connect();
    const { statements, sent } = watchStatements(client);
    try {
      await client.query('BEGIN');
      await repository.insertNew(client, ps, connection, [rowWrite('a', 10n)]);
      // All new, but its batch had items left out as stored: not a guess for the next batch.
      expect(await repository.insertNew(client, ps, connection, [rowWrite('b', 11n)], true)).toEqual(
        new Set([recordKey(rowWrite('b', 0n))]),
      );
      statements.mockClear();
      await repository.insertNew(client, ps, connection, [rowWrite('c', 12n)]);
      expect(sent()).toEqual(['INSERT']);
    } finally {
      await client.query('ROLLBACK');
      statements.mockRestore();
      client.release();
    }
  });

  it('reads known records back in one pass at worst, also before the table has statistics', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    for (let at = 0; at < 2_000; at += 500) {
      await write(
        user,
        connection,
        Array.from({ length: 500 }, (_, i) => playlist(at + i)),
      );
    }
    // What the planner does with the write path's lookups right after a large first write,
    // before autovacuum has analyzed anything: no join that reads every record of the
    // connection with its ciphertext, no walk of the connection per key.
    const keys = Array.from({ length: 500 }, (_, i) => `pl-${i * 3}`);
    for (const statement of [FIND_FOR_WRITE_SQL, STORED_KEYS_SQL]) {
      const { rows } = await schema.pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${statement}`, [
        connection,
        'media.playlist',
        keys,
      ]);
      const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
      expect(plan).not.toContain('Hash Join');
      expect(plan).not.toContain('Nested Loop');
      expect(plan).toContain('Index');
    }
  });

  it('sorts a mixed batch into new, changed, unchanged, deleted and re-appearing records, and moves the cursor past what changed', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2), playlist(3)]);
    const gone = (n: number) =>
      create(RecordInputSchema, {
        type: 'media.playlist',
        externalId: `pl-${n}`,
        deleted: true,
        sourceUpdatedAt: timestampFromDate(new Date()),
      });
    expect(await write(user, connection, [gone(3)])).toEqual({ written: 0, unchanged: 0, tombstoned: 1 });
    const versions = async () =>
      new Map(
        (
          await schema.pool.query('SELECT external_id, version::int AS v FROM records WHERE connection_id = $1', [
            connection,
          ])
        ).rows.map((r) => [r.external_id as string, r.v as number]),
      );
    const before = await versions();

    // pl-1 unchanged, pl-2 renamed, pl-3 back from the dead (later than its deletion), pl-4 and
    // pl-5 new, pl-6 deleted before it was ever seen.
    const back = playlist(3);
    back.sourceUpdatedAt = timestampFromDate(new Date(Date.now() + 1_000));
    const counts = await write(user, connection, [
      playlist(1),
      playlist(2, 'Renamed'),
      back,
      playlist(4),
      playlist(5),
      gone(6),
    ]);
    expect(counts).toEqual({ written: 4, unchanged: 1, tombstoned: 1 });
    const after = await versions();
    expect(after.get('pl-1')).toBe(before.get('pl-1'));
    const maxBefore = Math.max(...before.values());
    for (const id of ['pl-2', 'pl-3', 'pl-4', 'pl-5', 'pl-6']) expect(after.get(id)).toBeGreaterThan(maxBefore);
    expect(new Set(after.values()).size).toBe(after.size);
    const { rows } = await schema.pool.query('SELECT last_version::int AS v FROM connections WHERE id = $1', [
      connection,
    ]);
    expect(rows[0].v).toBe(Math.max(...after.values()));

    // A reader whose cursor stood at the old end sees exactly what changed, each once.
    const feed = await page(connection, APP_PLAYLISTS, { cursor: encodeCursor(BigInt(maxBefore)) });
    expect(feed.records.map((r) => `${r.externalId}:${r.deleted}`).sort()).toEqual([
      'pl-2:false',
      'pl-3:false',
      'pl-4:false',
      'pl-5:false',
      'pl-6:true',
    ]);
    // Nothing changed: the cursor does not move.
    expect(await write(user, connection, [playlist(1), playlist(4)])).toEqual({
      written: 0,
      unchanged: 2,
      tombstoned: 0,
    });
    expect(
      (await schema.pool.query('SELECT last_version::int AS v FROM connections WHERE id = $1', [connection])).rows[0].v,
    ).toBe(rows[0].v);
  });

  it('an item a listing missed (an undated deletion) comes back when the source lists it again; a dated deletion holds', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(7), playlist(8)]);
    // What syncCollection sends for ids a walk did not see: no source time.
    const missed = (n: number) =>
      create(RecordInputSchema, { type: 'media.playlist', externalId: `pl-${n}`, deleted: true });
    const dated = create(RecordInputSchema, {
      type: 'media.playlist',
      externalId: 'pl-8',
      deleted: true,
      sourceUpdatedAt: timestampFromDate(new Date()),
    });
    expect(await write(user, connection, [missed(7), dated])).toEqual({ written: 0, unchanged: 0, tombstoned: 2 });
    // The next walk lists both again, unchanged at the source (same updated_at as before).
    expect(await write(user, connection, [playlist(7), playlist(8)])).toEqual({
      written: 1,
      unchanged: 1,
      tombstoned: 0,
    });
    const live = (await page(connection, APP_PLAYLISTS)).records.filter((r) => !r.deleted).map((r) => r.externalId);
    expect(live).toEqual(['pl-7']);
  });

  it('refuses to start with a fresh keyring while connections whose data keys the missing one wrapped are stored', async () => {
    await write(userOn(0), randomUUID(), [playlist(1)]);
    const env = envSchema.parse({
      MASTER_KEY_FILE: join(keyDir, 'elsewhere', 'master.key'),
      MASTER_KEY_CREATE_IF_MISSING: 'true',
      DATA_KEY_DIR: join(keyDir, 'elsewhere', 'data-keys'),
    });
    await expect(RecordKeys.open(env, () => countStoredDataKeys(schema.pool), systemClock)).rejects.toMatchObject({
      code: 'key_file_missing',
    });
    expect(existsSync(join(keyDir, 'elsewhere', 'personal-server.keyring'))).toBe(false);
  });

  it('refuses bodies that do not match the catalog, and types the integration does not produce', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    const bad = create(RecordInputSchema, {
      type: 'media.playlist',
      externalId: 'x',
      dataJson: Buffer.from('{"source":"spotify","id":"x"}'),
    });
    expect(await codeOf(write(user, connection, [bad]))).toBe('invalid_record');
    const foreign = create(RecordInputSchema, {
      type: 'code.repository',
      externalId: 'r',
      dataJson: Buffer.from('{"source":"spotify","id":"r","fullName":"a/b","private":false}'),
    });
    expect(await codeOf(write(user, connection, [foreign]))).toBe('invalid_record');
  });

  it('a ciphertext copied in SQL to another user, connection or record does not decrypt; a flipped bit is detected', async () => {
    const alice = userOn(0);
    const bob = userOn(0);
    const aliceConn = randomUUID();
    const bobConn = randomUUID();
    await grant(alice, aliceConn, APP_PLAYLISTS, ['spotify:read:playlists']);
    await grant(bob, bobConn, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(alice, aliceConn, [playlist(1, 'Alice secret')]);
    await write(bob, bobConn, [playlist(1, 'Bob list'), playlist(2, 'Bob other')]);

    // Bob's row 1 gets Alice's ciphertext: Bob's key, Bob's AAD → authentication fails.
    await schema.pool.query(
      `UPDATE records SET ciphertext = (SELECT ciphertext FROM records WHERE connection_id = $1 AND external_id = 'pl-1') WHERE connection_id = $2 AND external_id = 'pl-1'`,
      [aliceConn, bobConn],
    );
    expect(await codeOf(records.query(q(bobConn, APP_PLAYLISTS)))).toBe('decryption_failed');

    // Within one connection (same key): row 2's ciphertext under row 1's id → the record id in the AAD differs.
    const bobConn2 = randomUUID();
    await grant(bob, bobConn2, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(bob, bobConn2, [playlist(1), playlist(2)]);
    await schema.pool.query(
      `UPDATE records SET ciphertext = (SELECT ciphertext FROM records WHERE connection_id = $1 AND external_id = 'pl-2') WHERE connection_id = $1 AND external_id = 'pl-1'`,
      [bobConn2],
    );
    expect(await codeOf(records.query(q(bobConn2, APP_PLAYLISTS)))).toBe('decryption_failed');
    // And the other way, in a connection whose first record is intact: row 1 decrypts, then row 2
    // holds row 1's ciphertext; the page's AAD buffer must carry row 2's id by then (record-aad.ts).
    const bobConn3 = randomUUID();
    await grant(bob, bobConn3, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(bob, bobConn3, [playlist(1), playlist(2)]);
    expect((await page(bobConn3, APP_PLAYLISTS)).records.map((r) => r.externalId)).toEqual(['pl-1', 'pl-2']);
    await schema.pool.query(
      `UPDATE records SET ciphertext = (SELECT ciphertext FROM records WHERE connection_id = $1 AND external_id = 'pl-1') WHERE connection_id = $1 AND external_id = 'pl-2'`,
      [bobConn3],
    );
    expect(await codeOf(records.query(q(bobConn3, APP_PLAYLISTS)))).toBe('decryption_failed');

    // Moving Alice's whole row to Bob's server (personal_server_id/connection_id rewritten).
    const carolConn = randomUUID();
    await grant(bob, carolConn, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(bob, carolConn, []);
    await schema.pool.query(
      `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, source_updated_at, updated_at, version)
       SELECT gen_random_uuid(), (SELECT personal_server_id FROM connections WHERE id = $2), $2, type, external_id, ciphertext, source_updated_at, updated_at, 1
         FROM records WHERE connection_id = $1`,
      [aliceConn, carolConn],
    );
    expect(await codeOf(records.query(q(carolConn, APP_PLAYLISTS)))).toBe('decryption_failed');

    // One flipped bit in Alice's own row.
    expect((await page(aliceConn, APP_PLAYLISTS)).records[0]!.data!.name).toBe('Alice secret');
    await schema.pool.query(
      `UPDATE records SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1) WHERE connection_id = $1`,
      [aliceConn],
    );
    expect(await codeOf(records.query(q(aliceConn, APP_PLAYLISTS)))).toBe('decryption_failed');
  });

  it('a page is finished JSON bytes: bodies as stored, times as Postgres holds them, tombstones null, the grant read once', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    // Bodies and an external id with characters beyond ASCII go into the page as their UTF-8
    // bytes: every part of the page is measured in bytes, not UTF-16 units (page-bytes.ts).
    const beyondAscii = { source: 'spotify', id: 'pl-日本', name: 'Ünïcødé 🎵 名前', public: false };
    const bodies = new Map<string, Record<string, unknown>>(
      [playlist(1, 'Café ☕ 日本'), playlist(2), playlist(3)].map((input) => [
        input.externalId,
        JSON.parse(Buffer.from(input.dataJson).toString('utf8')) as Record<string, unknown>,
      ]),
    );
    bodies.set(beyondAscii.id, beyondAscii);
    await write(user, connection, [
      playlist(1, 'Café ☕ 日本'),
      playlist(2),
      playlist(3),
      create(RecordInputSchema, {
        type: 'media.playlist',
        externalId: beyondAscii.id,
        dataJson: Buffer.from(JSON.stringify(beyondAscii)),
        sourceUpdatedAt: timestampFromDate(new Date(Date.UTC(2026, 0, 1, 0, 0, 9))),
      }),
    ]);
    await write(user, connection, [
      create(RecordInputSchema, { type: 'media.playlist', externalId: 'pl-3', deleted: true }),
    ]);

    const empty = await records.query(q(connection, APP_PLAYLISTS, { type: 'media.playlist_item' }));
    expect(empty.recordsJson.toString()).toBe('[]');

    // A `since` past year 9999 is a time like any other (nothing changed after it), not a refused parameter.
    const future = await records.query(q(connection, APP_PLAYLISTS, { sinceMs: BigInt(Date.UTC(10000, 0, 1)) }));
    expect(future.recordsJson.toString()).toBe('[]');

    // The change feed (every change since the epoch): live records and the tombstone.
    const feed = await records.query(q(connection, APP_PLAYLISTS, { sinceMs: 1n }));
    const raw = feed.recordsJson.toString('utf8');
    const parsed = JSON.parse(raw) as {
      id: string;
      updatedAt: string;
      sourceUpdatedAt: string;
      deleted: boolean;
      data: unknown;
    }[];
    expect(JSON.stringify(parsed)).toBe(raw); // compact JSON, nothing to re-encode
    expect(raw).toContain('"name":"Café ☕ 日本"');
    const stored = await schema.pool.query<{
      id: string;
      external_id: string;
      updated_at: Date;
      source_updated_at: Date;
      deleted: boolean;
    }>(
      'SELECT id, external_id, updated_at, source_updated_at, deleted_at IS NOT NULL AS deleted FROM records WHERE connection_id = $1 ORDER BY version',
      [connection],
    );
    expect(parsed.map((r) => [r.id, r.updatedAt, r.sourceUpdatedAt, r.deleted, r.data === null])).toEqual(
      stored.rows.map((r) => [
        r.id,
        r.updated_at.toISOString(),
        r.source_updated_at.toISOString(),
        r.deleted,
        r.deleted,
      ]),
    );
    expect(feed.syncedAt).toBeInstanceOf(Date);

    // Byte for byte the JSON of the records expected, whole bodies and bodies cut to `name`.
    const expected = (data: (body: Record<string, unknown>) => unknown) =>
      Buffer.from(
        JSON.stringify(
          stored.rows.map((r) => ({
            id: r.id,
            type: 'media.playlist',
            externalId: r.external_id,
            updatedAt: r.updated_at.toISOString(),
            sourceUpdatedAt: r.source_updated_at.toISOString(),
            deleted: r.deleted,
            data: r.deleted ? null : data(bodies.get(r.external_id)!),
          })),
        ),
      );
    expect(stored.rows.map((r) => r.external_id)).toContain('pl-日本');
    expect(feed.recordsJson.toString('utf8')).toBe(expected((body) => body).toString('utf8'));
    expect(feed.recordsJson.equals(expected((body) => body))).toBe(true);
    const named = await records.query(q(connection, APP_PLAYLISTS, { sinceMs: 1n, fields: ['name'] }));
    expect(named.recordsJson.toString('utf8')).toBe(expected((body) => ({ name: body.name })).toString('utf8'));
    expect(named.recordsJson.equals(expected((body) => ({ name: body.name })))).toBe(true);

    // A full page: the cursor after its last record, and the next page reads on from there.
    const first = await records.query(q(connection, APP_PLAYLISTS, { sinceMs: 1n, limit: 3 }));
    const second = await records.query(
      q(connection, APP_PLAYLISTS, { sinceMs: 1n, cursor: first.nextCursor, limit: 3 }),
    );
    expect([...JSON.parse(first.recordsJson.toString()), ...JSON.parse(second.recordsJson.toString())]).toEqual(parsed);
    expect(second.nextCursor).toBe('');
  });

  it('a page gives each source time back to the millisecond, before 1970 and 1900 included', async () => {
    // Written as epoch milliseconds (records.repository insertRows), read back formatted by Postgres.
    const times = ['1969-12-31T23:59:59.999Z', '1900-01-01T00:00:00.001Z', '2026-03-04T05:06:07.123Z'];
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(
      user,
      connection,
      times.map((at, n) => ({ ...playlist(n), sourceUpdatedAt: timestampFromDate(new Date(at)) })),
    );
    const read = JSON.parse((await records.query(q(connection, APP_PLAYLISTS))).recordsJson.toString()) as {
      externalId: string;
      sourceUpdatedAt: string;
    }[];
    expect(Object.fromEntries(read.map((r) => [r.externalId, r.sourceUpdatedAt]))).toEqual(
      Object.fromEntries(times.map((at, n) => [`pl-${n}`, at])),
    );
  });

  it('source deletions become tombstones: gone from listings, visible in the change feed', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2)]);
    // updated_at is stored to the millisecond (rounded): keep clear of the boundary.
    await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 10));
    const gone = create(RecordInputSchema, {
      type: 'media.playlist',
      externalId: 'pl-2',
      deleted: true,
      sourceUpdatedAt: timestampFromDate(new Date()),
    });
    expect(await write(user, connection, [gone])).toEqual({ written: 0, unchanged: 0, tombstoned: 1 });
    expect(await write(user, connection, [gone])).toEqual({ written: 0, unchanged: 1, tombstoned: 0 });

    expect((await page(connection, APP_PLAYLISTS)).records.map((r) => r.externalId)).toEqual(['pl-1']);
    const feed = await page(connection, APP_PLAYLISTS, { sinceMs: BigInt(t0) });
    expect(feed.records).toEqual([expect.objectContaining({ externalId: 'pl-2', deleted: true, data: null })]);
    const stored = await schema.pool.query<{ ciphertext: Buffer }>(
      `SELECT ciphertext FROM records WHERE connection_id = $1 AND external_id = 'pl-2'`,
      [connection],
    );
    expect(stored.rows[0]!.ciphertext.length).toBe(0); // the body is gone, not just hidden

    // The person's count of what is stored leaves the tombstone out; no one else may ask.
    await write(user, connection, [play(1), play(2), play(3)]);
    expect(await records.countByType(user, connection)).toEqual([
      { type: 'media.play_event', count: 3n },
      { type: 'media.playlist', count: 1n },
    ]);
    await expect(records.countByType(userOn(0), connection)).rejects.toMatchObject({ code: 'connection_not_found' });
    await expect(records.countByType(user, randomUUID())).rejects.toMatchObject({ code: 'connection_not_found' });

    // The owner's export: every live record decrypted, page by page, no tombstone; only the
    // owner's own connection, only from the owning shard.
    const exported: { externalId: string; data: unknown }[] = [];
    let cursor = '';
    do {
      const next = await records.exportPage(user, connection, cursor, 2);
      exported.push(...(JSON.parse(next.recordsJson.toString()) as { externalId: string; data: unknown }[]));
      cursor = next.nextCursor;
    } while (cursor !== '');
    expect(exported.map((r) => r.externalId).sort()).toEqual(['pl-1', 'play-1', 'play-2', 'play-3']);
    expect(exported.find((r) => r.externalId === 'pl-1')?.data).toMatchObject({ name: expect.any(String) });
    expect(await codeOf(records.exportPage(userOn(0), connection, '', 10))).toBe('connection_not_found');
    expect(await codeOf(otherShardRecords.exportPage(user, connection, '', 10))).toBe('wrong_shard');
  });

  it('cursor pages miss nothing that existed when paging began, while sync keeps writing', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    const initial = Array.from({ length: 60 }, (_, i) => playlist(i));
    await write(user, connection, initial);

    let stop = false;
    let n = 1_000;
    const writer = (async () => {
      while (!stop) {
        // New records and updates of existing ones, racing the pages.
        const k = n++;
        await write(user, connection, [playlist(k), playlist(k % 60, `Updated ${k}`)]);
      }
    })();
    const seen = new Set<string>();
    let cursor = '';
    let pages = 0;
    do {
      const result = await page(connection, APP_PLAYLISTS, { limit: 7, cursor });
      for (const r of result.records) seen.add(r.externalId);
      cursor = result.nextCursor;
      pages += 1;
      // Make sure writes really land between pages, however the scheduler runs us.
      if (pages === 1) while (n <= 1_002) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 2));
    } while (cursor !== '' && pages < 500);
    stop = true;
    await writer;
    for (const record of initial) expect(seen.has(record.externalId)).toBe(true);
    expect(n).toBeGreaterThan(1_001); // the writer really ran during paging
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS, { cursor: 'garbage!' })))).toBe('validation_failed');
  });

  it('revoking one app is committed when the call returns: its next query fails, the other app keeps working', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    const a = await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await grant(user, connection, APP_HISTORY, ['spotify:read:recently_played', 'spotify:read:playlists']);
    await write(user, connection, [playlist(1), play(1)]);

    // The user revokes app A's grant (by grant id, proving ownership with the user id).
    expect(
      await codeOf(grants.revoke(create(RevokeGrantRequestSchema, { grantId: a.row.id, userId: userOn(0) }))),
    ).toBe('not_found');
    await grants.revoke(create(RevokeGrantRequestSchema, { grantId: a.row.id, userId: user }));
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('grant_revoked');
    expect((await page(connection, APP_HISTORY)).records).toHaveLength(2);

    // App B gives its own grant up (by connection, as the app's route names it).
    await grants.revoke(create(RevokeGrantRequestSchema, { connectionId: connection, applicationId: APP_HISTORY }));
    expect(await codeOf(records.query(q(connection, APP_HISTORY)))).toBe('grant_revoked');
    expect(
      await codeOf(
        grants.revoke(create(RevokeGrantRequestSchema, { connectionId: randomUUID(), applicationId: APP_HISTORY })),
      ),
    ).toBe('connection_not_found');

    // A new consent re-activates the app with the new scopes.
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:recently_played']);
    expect((await page(connection, APP_PLAYLISTS)).records.map((r) => r.type)).toEqual(['media.play_event']);
  });

  it('honours only grants it sealed: one written or changed in SQL is refused like no grant', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    const registered = await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), play(1)]);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(1);
    const sql = (text: string, values: unknown[]) => schema.pool.query(text, values);

    // Widening the types (or scopes) of a sealed grant.
    await sql(`UPDATE grants SET types = array_append(types, 'media.play_event') WHERE id = $1`, [registered.row.id]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('connection_not_found');
    await sql(`UPDATE grants SET types = $2 WHERE id = $1`, [registered.row.id, registered.row.types]);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(1);

    // NULL types or scopes (the columns are nullable): refused like a changed grant, not an internal error.
    await sql(`UPDATE grants SET types = NULL WHERE id = $1`, [registered.row.id]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('connection_not_found');
    await sql(`UPDATE grants SET types = $2, scopes = NULL WHERE id = $1`, [registered.row.id, registered.row.types]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('connection_not_found');
    await sql(`UPDATE grants SET scopes = $2 WHERE id = $1`, [registered.row.id, registered.row.scopes]);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(1);

    // A row inserted for another app, with the seal of an existing one copied over.
    const stranger = randomUUID();
    await sql(
      `INSERT INTO grants (id, connection_id, org_id, application_id, user_id, scopes, types, state, seal, updated_at)
       SELECT gen_random_uuid(), connection_id, org_id, $2, user_id, scopes, types, 'active', seal, now()
         FROM grants WHERE id = $1`,
      [registered.row.id, stranger],
    );
    expect(await codeOf(records.query(q(connection, stranger)))).toBe('connection_not_found');
    await sql(`UPDATE grants SET seal = NULL WHERE application_id = $1`, [stranger]);
    expect(await codeOf(records.query(q(connection, stranger)))).toBe('connection_not_found');

    // A revoked grant set back to active in SQL (its seal went with the revocation).
    await grants.revoke(create(RevokeGrantRequestSchema, { grantId: registered.row.id, userId: user }));
    expect((await sql('SELECT seal FROM grants WHERE id = $1', [registered.row.id])).rows[0]).toEqual({ seal: null });
    await sql(`UPDATE grants SET types = NULL WHERE id = $1`, [registered.row.id]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('grant_revoked');
    await sql(`UPDATE grants SET types = $2 WHERE id = $1`, [registered.row.id, registered.row.types]);
    await sql(`UPDATE grants SET state = 'active', revoked_at = NULL WHERE id = $1`, [registered.row.id]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('connection_not_found');

    // A consent registered through the service seals the grant again.
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(1);
  });

  it('only the owning shard answers for a user; another shard says wrong_shard', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    const registered = await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    expect(registered.shard).toBe(0);
    await write(user, connection, [playlist(1)]);
    expect(await codeOf(otherShardRecords.query(q(connection, APP_PLAYLISTS)))).toBe('wrong_shard');
    expect(await codeOf(otherShardRecords.query(q(randomUUID(), APP_PLAYLISTS)))).toBe('connection_not_found');
  });

  it('the query handler answers over NATS as the gateway asks it: the page, its cursor, the errors, wrong_shard, revoked', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1), playlist(2, 'Zwei'), playlist(3)]);
    const client = new RpcClient(nc);
    const { shardQuery } = rpc.personalServer;
    const ask = (shard: number, request: QueryRecordsRequest) =>
      client.request(shardQuery, request, { subject: shardQuery.shardSubject!(shard) });

    // Every field of the request reaches the service: type, fields, limit, cursor.
    const first = q(connection, APP_PLAYLISTS, { type: 'media.playlist', fields: ['name'], limit: 2 });
    const answered = await ask(0, first);
    const direct = await records.query(first);
    expect(Buffer.from(answered.recordsJson).equals(direct.recordsJson)).toBe(true);
    expect(JSON.parse(Buffer.from(answered.recordsJson).toString('utf8'))).toMatchObject([
      { externalId: 'pl-1', data: { name: 'List 1' } },
      { externalId: 'pl-2', data: { name: 'Zwei' } },
    ]);
    expect(answered.nextCursor).not.toBe('');
    expect(answered.nextCursor).toBe(direct.nextCursor);
    expect(answered.syncedAt).toEqual(direct.syncedAt ? timestampFromDate(direct.syncedAt) : undefined);
    const next = await ask(0, { ...first, cursor: answered.nextCursor });
    expect(JSON.parse(Buffer.from(next.recordsJson).toString('utf8'))).toEqual([
      expect.objectContaining({ externalId: 'pl-3', data: { name: 'List 3' } }),
    ]);

    expect(await codeOf(ask(1, first))).toBe('wrong_shard');
    expect(await codeOf(ask(0, q(connection, APP_PLAYLISTS, { type: 'media.play_event' })))).toBe('scope_not_granted');
    expect(await codeOf(ask(0, q(randomUUID(), APP_PLAYLISTS)))).toBe('connection_not_found');
    expect(await codeOf(ask(0, q(connection, APP_PLAYLISTS, { limit: 0 })))).toBe('validation_failed');

    // Revoked: the handler's answer is the service's error, not an empty page.
    await grants.revoke(create(RevokeGrantRequestSchema, { connectionId: connection, applicationId: APP_PLAYLISTS }));
    expect(await codeOf(ask(0, first))).toBe('grant_revoked');
  });

  it('rebalance moves only users whose shard changed, and the new owner serves them at once', async () => {
    // A user recorded on shard 1 although rendezvous over 2 shards says 0 (as if placed when
    // the shard count was different): the plan moves exactly that user.
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1)]);
    await schema.pool.query('UPDATE personal_servers SET shard = 1 WHERE user_id = $1', [user]);
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('wrong_shard');
    expect((await page(connection, APP_PLAYLISTS, {}, otherShardRecords)).records).toHaveLength(1);

    const plan = await planRebalance(schema.pool, 2);
    expect(plan).toEqual([{ userId: user, from: 1, to: 0 }]);
    expect(await applyRebalance(schema.pool, plan)).toBe(1);
    expect(await applyRebalance(schema.pool, plan)).toBe(0); // a stale plan moves nobody twice
    expect(await planRebalance(schema.pool, 2)).toEqual([]);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(1);
    expect(await codeOf(otherShardRecords.query(q(connection, APP_PLAYLISTS)))).toBe('wrong_shard');
  });

  it('deleting a connection crypto-shreds it: a database backup taken before stays unreadable', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1, 'Private'), playlist(2)]);
    expect((await page(connection, APP_PLAYLISTS)).records).toHaveLength(2);

    // The "backup": a copy of every row of this connection, as pg_dump would have it.
    const tables = ['personal_servers', 'connections', 'grants', 'records'];
    const backup: Record<string, unknown[]> = {};
    for (const table of tables) {
      const where =
        table === 'personal_servers'
          ? 'id = (SELECT personal_server_id FROM connections WHERE id = $1)'
          : table === 'connections'
            ? 'id = $1'
            : 'connection_id = $1';
      backup[table] = (await schema.pool.query(`SELECT * FROM ${table} WHERE ${where}`, [connection])).rows;
    }
    expect(backup.records).toHaveLength(2);

    expect(await connections.delete(connection, user)).toEqual({ recordsDeleted: 2, grantsRevoked: 1 });
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('connection_not_found');
    // A sync that was still in flight cannot bring it back under a fresh key.
    expect(await codeOf(write(user, connection, [playlist(3, 'Late')]))).toBe('connection_not_found');
    expect((await schema.pool.query('SELECT 1 FROM connections WHERE id = $1', [connection])).rowCount).toBe(0);
    // The broker re-delivers a deletion until it hears back: a repeat shred confirms, changing nothing.
    expect(await connections.delete(connection, user)).toEqual({ recordsDeleted: 0, grantsRevoked: 0 });

    // Restore the backup's rows (what an attacker with the old dump and our code would do).
    for (const table of ['connections', 'grants', 'records']) {
      for (const row of backup[table] as Record<string, unknown>[]) {
        const columns = Object.keys(row);
        await schema.pool.query(
          `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
          Object.values(row),
        );
      }
    }
    expect(await codeOf(records.query(q(connection, APP_PLAYLISTS)))).toBe('key_destroyed');
    const restored = await schema.pool.query<{ ciphertext: Buffer }>(
      'SELECT ciphertext FROM records WHERE connection_id = $1',
      [connection],
    );
    expect(restored.rows).toHaveLength(2);
    for (const row of restored.rows) expect(row.ciphertext.toString('latin1')).not.toContain('Private');
  });
  it('records go with their connection: a personal server or connection deleted in SQL takes its records along', async () => {
    const user = userOn(0);
    const [kept, byServer, byConnection] = [randomUUID(), randomUUID(), randomUUID()];
    const other = userOn(0);
    await write(other, kept, [playlist(1)]);
    await write(user, byServer, [playlist(1), playlist(2)]);
    await write(user, byConnection, [playlist(1)]);
    const count = async (connectionId: string) =>
      (await schema.pool.query('SELECT 1 FROM records WHERE connection_id = $1', [connectionId])).rowCount;
    expect([await count(kept), await count(byServer), await count(byConnection)]).toEqual([1, 2, 1]);

    await schema.pool.query('DELETE FROM connections WHERE id = $1', [byConnection]);
    expect(await count(byConnection)).toBe(0);
    // By hand, from a session whose search_path does not name this schema.
    const client = await schema.pool.connect();
    try {
      await client.query('SET search_path = public');
      await client.query(
        `DELETE FROM "${schema.schema}".personal_servers
          WHERE id = (SELECT personal_server_id FROM "${schema.schema}".connections WHERE id = $1)`,
        [byServer],
      );
    } finally {
      client.release(true); // not back into the pool with another search_path
    }
    expect([await count(kept), await count(byServer)]).toEqual([1, 0]);
  });
  it('a person who connects the same source again after deleting it starts empty, under a fresh key', async () => {
    const user = userOn(0);
    const connection = randomUUID();
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    await write(user, connection, [playlist(1, 'Before')]);
    const { rows: before } = await schema.pool.query<{ data_key_id: string }>(
      'SELECT data_key_id FROM connections WHERE id = $1',
      [connection],
    );
    await connections.delete(connection, user);
    // A write still in flight from before cannot bring it back…
    expect(await codeOf(write(user, connection, [playlist(2, 'Late')]))).toBe('connection_not_found');

    // …but a new consent can (the broker keeps the connection id of a reconnected source).
    await grant(user, connection, APP_PLAYLISTS, ['spotify:read:playlists']);
    const { rows: after } = await schema.pool.query<{ data_key_id: string }>(
      'SELECT data_key_id FROM connections WHERE id = $1',
      [connection],
    );
    expect(after[0]!.data_key_id).not.toBe(before[0]!.data_key_id);
    expect((await page(connection, APP_PLAYLISTS)).records).toEqual([]);
    await write(user, connection, [playlist(3, 'After')]);
    expect((await page(connection, APP_PLAYLISTS)).records.map((r) => r.data?.name)).toEqual(['After']);
  });
});
