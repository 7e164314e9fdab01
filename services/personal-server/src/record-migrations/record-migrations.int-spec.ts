import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { grantChallenge } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { answerRpc, type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import {
  GrantRecordSchema,
  QueryRecordsRequestSchema,
  RecordInputSchema,
  rpc,
  WriteRecordsRequestSchema,
} from '@context-gateway/proto';
import { CATALOG_VERSION } from '@context-gateway/record-catalog';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestApplicationContext } from '@nestjs/common';

import { sealGrant } from '../grants/grant-seal.js';
import { GrantsModule } from '../grants/grants.module.js';
import { GrantsService } from '../grants/grants.service.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { recordAad, recordDigestContext } from '../records/record-aad.js';
import { RecordsModule } from '../records/records.module.js';
import { RecordsService } from '../records/records.service.js';
import { startShardContext } from '../testing/shard-context.js';
import { RecordMigrationsModule } from './record-migrations.module.js';
import { RecordMigrationsService } from './record-migrations.service.js';

// Catalog version 3 retired media.watch_event: a Netflix connection written by version 2
// holds watch events and a grant sealed over that type. The shard moves both, with real
// keys and real Postgres, and the app reads the same viewings as media.play_event.
const migrationsDir = new URL('../../prisma/migrations', import.meta.url).pathname;
let schema: TestSchema;
let keyDir: string;
let natsServer: PrivateNats;
let nc: NatsConnection;
let shard: INestApplicationContext;
let grants: GrantsService;
let records: RecordsService;
let migrations: RecordMigrationsService;
let keys: RecordKeys;
const passkey = new SoftAuthenticator();
const ORG = randomUUID();

const sql = <T extends object = Record<string, unknown>>(text: string, values: unknown[] = []) =>
  schema.pool.query<T>(text, values).then((r) => r.rows);

async function grantNetflix(userId: string, connectionId: string, applicationId: string) {
  const record = create(GrantRecordSchema, {
    grantId: randomUUID(),
    orgId: ORG,
    applicationId,
    userId,
    connectionId,
    integration: 'netflix',
    scopes: ['netflix:read:history'],
  });
  const nonce = randomUUID();
  const notAfter = new Date(Date.now() + 60_000);
  return grants.register(record, {
    $typeName: 'contextgateway.personalserver.v1.PasskeyProof',
    nonce,
    notAfter: timestampFromDate(notAfter),
    assertionJson: JSON.stringify(
      passkey.assert(grantChallenge({ ...record, nonce, notAfter }), 'http://localhost:8080'),
    ),
  });
}

const viewing = (n: number) => ({
  source: 'netflix',
  trackId: `netflix:title-${n}`,
  title: `Dark: Season 1: Episode ${n}`,
  creators: [],
  kind: 'episode',
  playedAt: `2024-03-0${n}T20:15:00.000Z`,
  durationMs: 2_530_000,
  profile: 'Ana',
  series: 'Dark',
  season: 1,
});

/**
 * Puts the connection back to what catalog version 2 left: its records at version 2, these
 * bodies stored as media.watch_event (encrypted the way the write path does), and every
 * grant's types as version 2 derived them, sealed by the shard.
 */
async function asWrittenByVersion2(
  connectionId: string,
  bodies: Array<{ externalId: string; body: unknown; deleted?: boolean }>,
): Promise<string[]> {
  const [connection] = await sql<{
    personal_server_id: string;
    user_id: string;
    data_key_id: string;
    last_version: string;
  }>('SELECT personal_server_id, user_id, data_key_id, last_version FROM connections WHERE id = $1', [connectionId]);
  if (!connection) throw new Error('no connection');
  const key = await keys.open(connection.data_key_id, {
    personalServerId: connection.personal_server_id,
    connectionId,
    userId: connection.user_id,
  });
  let version = BigInt(connection.last_version);
  const ids: string[] = [];
  for (const { externalId, body, deleted } of bodies) {
    const id = randomUUID();
    ids.push(id);
    const plaintext = Buffer.from(JSON.stringify(body));
    version += 1n;
    await sql(
      `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, body_digest,
                            source_updated_at, updated_at, deleted_at, version)
       VALUES ($1, $2, $3, 'media.watch_event', $4, $5, $6, now(), now(), $7, $8)`,
      [
        id,
        connection.personal_server_id,
        connectionId,
        externalId,
        deleted
          ? Buffer.alloc(0)
          : key.encrypt(plaintext, recordAad(connection.personal_server_id, connectionId, id, 'media.watch_event')),
        deleted
          ? null
          : key.digest(
              plaintext,
              recordDigestContext(connection.personal_server_id, connectionId, 'media.watch_event', externalId),
            ),
        deleted ? new Date() : null,
        version.toString(),
      ],
    );
  }
  await sql('UPDATE connections SET records_version = 2, last_version = $2 WHERE id = $1', [
    connectionId,
    version.toString(),
  ]);
  const active = await sql<{
    id: string;
    org_id: string;
    application_id: string;
    user_id: string;
    scopes: string[];
    consent_nonce: string;
  }>(`SELECT id, org_id, application_id, user_id, scopes, consent_nonce FROM grants WHERE connection_id = $1`, [
    connectionId,
  ]);
  for (const g of active) {
    const fields = {
      id: g.id,
      connectionId,
      orgId: g.org_id,
      applicationId: g.application_id,
      userId: g.user_id,
      scopes: g.scopes,
      types: ['media.watch_event'],
      consentNonce: g.consent_nonce,
    };
    await sql(`UPDATE grants SET types = $2, seal = $3 WHERE id = $1`, [g.id, fields.types, sealGrant(key, fields)]);
  }
  return ids;
}

async function readAs(connectionId: string, applicationId: string, type: string) {
  const result = await records.query(
    create(QueryRecordsRequestSchema, { orgId: ORG, applicationId, connectionId, limit: 100, type }),
  );
  return JSON.parse(result.recordsJson.toString('utf8')) as Array<{
    id: string;
    type: string;
    externalId: string;
    data: Record<string, unknown> | null;
  }>;
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
  schema = await createTestSchema({ prefix: 'ps_record_migrations', migrationsDir });
  keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-migrations-'));
  // A nats-server of this file's own: the identity stub below answers a catalogued subject,
  // which another file's stub on a shared server would answer too (Jest runs files in parallel).
  natsServer = await startPrivateNats();
  nc = await connect({ servers: natsServer.url });
  answerRpc(nc, rpc.identity.listUserPasskeys, () => ({
    passkeys: [{ credentialId: passkey.credentialId, publicKey: passkey.publicKey }],
  }));
  shard = await startShardContext(schema, nc, { MASTER_KEY_FILE: join(keyDir, 'master.key') }, [
    RecordsModule,
    GrantsModule,
    RecordMigrationsModule,
  ]);
  grants = shard.get(GrantsService);
  records = shard.get(RecordsService);
  migrations = shard.get(RecordMigrationsService);
  keys = shard.get(RecordKeys);
});

afterAll(async () => {
  await shard?.close();
  await nc?.drain();
  await natsServer?.stop();
  await schema?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

describe('migrations of stored records', () => {
  it('a new connection starts at the current catalog version, with nothing to migrate', async () => {
    const connectionId = randomUUID();
    await grantNetflix(randomUUID(), connectionId, randomUUID());
    const [row] = await sql<{ records_version: number }>('SELECT records_version FROM connections WHERE id = $1', [
      connectionId,
    ]);
    expect(row?.records_version).toBe(CATALOG_VERSION);
    expect(await migrations.migrateConnection(connectionId)).toMatchObject({ moved: 0, toVersion: CATALOG_VERSION });
  });

  it('moves Netflix watch events to play events and the grant with them; the app reads them under the new type', async () => {
    const userId = randomUUID();
    const connectionId = randomUUID();
    const app = randomUUID();
    await grantNetflix(userId, connectionId, app);
    // A re-upload under version 3 already wrote viewing 3 as a play event: that copy stands.
    await records.write(
      create(WriteRecordsRequestSchema, {
        userId,
        connectionId,
        integration: 'netflix',
        records: [
          create(RecordInputSchema, {
            type: 'media.play_event',
            externalId: 'v3',
            dataJson: Buffer.from(JSON.stringify({ ...viewing(3), device: 'TV' })),
          }),
        ],
      }),
    );
    const [moved1, moved2, , unfit] = await asWrittenByVersion2(connectionId, [
      { externalId: 'v1', body: viewing(1) },
      { externalId: 'v2', body: viewing(2) },
      { externalId: 'v3', body: viewing(3) },
      // Something version 2 stored that no play event can be: left where it is, and logged.
      { externalId: 'bad', body: { source: 'netflix', title: 'no trackId, no kind' } },
      { externalId: 'gone', body: null, deleted: true },
    ]);
    const [{ last_version: before } = { last_version: '0' }] = await sql<{ last_version: string }>(
      'SELECT last_version FROM connections WHERE id = $1',
      [connectionId],
    );
    const report = await migrations.migrateConnection(connectionId);
    expect(report).toEqual({
      connectionId,
      fromVersion: 2,
      toVersion: CATALOG_VERSION,
      moved: 2,
      superseded: 1,
      unfit: 1,
      grantsResealed: 1,
    });

    const plays = await readAs(connectionId, app, 'media.play_event');
    expect(plays.map((p) => p.externalId).sort()).toEqual(['v1', 'v2', 'v3']);
    // Same record ids, the bodies as they were plus the new flag.
    const byExternal = new Map(plays.map((p) => [p.externalId, p]));
    expect(byExternal.get('v1')).toMatchObject({
      id: moved1,
      type: 'media.play_event',
      data: { ...viewing(1), supplemental: false },
    });
    expect(byExternal.get('v2')?.id).toBe(moved2);
    expect(byExternal.get('v3')?.data).toMatchObject({ device: 'TV' }); // the version-3 write, not the old copy
    // The grant now covers play events only; its seal is the shard's (the query path checked it above).
    const [g] = await sql<{ types: string[] }>('SELECT types FROM grants WHERE connection_id = $1', [connectionId]);
    expect(g?.types).toEqual(['media.play_event']);
    // The retired type is refused by name, whatever a grant says.
    expect(await codeOf(readAs(connectionId, app, 'media.watch_event'))).toBe('record_type_retired');
    // What is left under the old type: only the record that does not fit.
    const left = await sql<{ id: string }>(
      `SELECT id FROM records WHERE connection_id = $1 AND type = 'media.watch_event'`,
      [connectionId],
    );
    expect(left.map((r) => r.id)).toEqual([unfit]);
    // Moved records got new change versions, so an app following the feed sees them.
    const [after] = await sql<{ last_version: string; records_version: number }>(
      'SELECT last_version, records_version FROM connections WHERE id = $1',
      [connectionId],
    );
    expect(BigInt(after?.last_version ?? 0)).toBe(BigInt(before) + 2n);
    expect(after?.records_version).toBe(CATALOG_VERSION);

    // Once is enough: a second run finds nothing to do.
    expect(await migrations.migrateConnection(connectionId)).toMatchObject({ fromVersion: CATALOG_VERSION, moved: 0 });
  });

  it('a connection not reached yet is migrated by its first query, before anything is read', async () => {
    const userId = randomUUID();
    const connectionId = randomUUID();
    const app = randomUUID();
    await grantNetflix(userId, connectionId, app);
    const [moved] = await asWrittenByVersion2(connectionId, [{ externalId: 'v1', body: viewing(1) }]);
    // Even before its migration, nothing is read under the retired type.
    expect(await codeOf(readAs(connectionId, app, 'media.watch_event'))).toBe('record_type_retired');
    const plays = await readAs(connectionId, app, 'media.play_event');
    expect(plays).toEqual([expect.objectContaining({ id: moved, type: 'media.play_event' })]);
    const [row] = await sql<{ records_version: number }>('SELECT records_version FROM connections WHERE id = $1', [
      connectionId,
    ]);
    expect(row?.records_version).toBe(CATALOG_VERSION);
  });

  it('leaves a grant whose seal does not match as it is: still refused', async () => {
    const userId = randomUUID();
    const connectionId = randomUUID();
    const app = randomUUID();
    await grantNetflix(userId, connectionId, app);
    await asWrittenByVersion2(connectionId, [{ externalId: 'v1', body: viewing(1) }]);
    // Widened in SQL after it was sealed.
    await sql(`UPDATE grants SET scopes = array_append(scopes, 'netflix:read:everything') WHERE connection_id = $1`, [
      connectionId,
    ]);
    const report = await migrations.migrateConnection(connectionId);
    expect(report).toMatchObject({ moved: 1, grantsResealed: 0 });
    expect(await codeOf(readAs(connectionId, app, 'media.play_event'))).toBe('connection_not_found');
  });

  it('a shard migrates every connection of its own that is behind, and only those', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const connectionId = randomUUID();
      await grantNetflix(randomUUID(), connectionId, randomUUID());
      await asWrittenByVersion2(connectionId, [{ externalId: `v${i}`, body: viewing(1) }]);
      ids.push(connectionId);
    }
    // One of them placed on another shard: not this one's to migrate.
    await sql(
      'UPDATE personal_servers SET shard = 1 WHERE id = (SELECT personal_server_id FROM connections WHERE id = $1)',
      [ids[2]],
    );
    const reports = await migrations.migrateShard();
    expect(reports.map((r) => r.connectionId).sort()).toEqual([ids[0], ids[1]].sort());
    const versions = await sql<{ id: string; records_version: number }>(
      'SELECT id, records_version FROM connections WHERE id = ANY($1::uuid[])',
      [ids],
    );
    expect(Object.fromEntries(versions.map((v) => [v.id, v.records_version]))).toEqual({
      [ids[0]!]: CATALOG_VERSION,
      [ids[1]!]: CATALOG_VERSION,
      [ids[2]!]: 2,
    });
  });
});
