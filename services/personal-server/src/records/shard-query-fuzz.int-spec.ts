import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { grantChallenge } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { countRows } from '@context-gateway/database/testing';
import { Header, ReplyStatus, RpcClient } from '@context-gateway/messaging';
import { answerRpc, fuzzParameters, fuzzRpcSubject, fuzzRuns } from '@context-gateway/messaging/testing';
import {
  ErrorReplySchema,
  type QueryRecordsRequest,
  QueryRecordsRequestSchema,
  QueryRecordsResponseSchema,
  RecordInputSchema,
  rpc,
} from '@context-gateway/proto';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import fc from 'fast-check';

import { AppModule } from '../app.module.js';
import { rendezvousShard } from '../directory/rendezvous.js';
import { type Env, loadEnv } from '../env.js';

// `ps.v1.shard.<n>.query` over real NATS against a real shard (docs/fuzzing.md): shard 0 of
// two, booted as main.ts boots it, with a person on each shard who granted an application
// their Spotify playlists. The catalog's fuzz suite (../rpc-fuzz.int-spec.ts) fuzzes every
// `ps.v1.*` subject with random ids; this file the one every records query crosses, with the
// people's ids mixed in, then hand-made hostile requests, each answered with its stable code
// while the shard keeps answering; last, NULs in the other subjects' strings.
const SHARDS = 2;
const SHARD = 0;
const subject = rpc.personalServer.shardQuery.shardSubject!(SHARD);
const passkey = new SoftAuthenticator();
const keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-query-fuzz-'));
const orgId = randomUUID();
const applicationId = randomUUID();
/** Connections of a person on this shard and of one on the other shard (which only that shard serves). */
const here = { userId: userOn(SHARD), connectionId: randomUUID() };
const there = { userId: userOn(1 - SHARD), connectionId: randomUUID() };
let harness: ServiceHarness | undefined;

/** A person the directory places on `shard` (rendezvous over SHARDS shards). */
function userOn(shard: number): string {
  for (;;) {
    const id = randomUUID();
    if (rendezvousShard(id, SHARDS) === shard) return id;
  }
}

/** What connection-broker sends after a consent: the grant, signed by the person's passkey. */
function grantRequest(person: typeof here, scopes = ['spotify:read:playlists']) {
  const grant = {
    grantId: randomUUID(),
    orgId,
    applicationId,
    userId: person.userId,
    connectionId: person.connectionId,
    integration: 'spotify',
    scopes,
  };
  const nonce = randomUUID();
  const notAfter = new Date(Date.now() + 60_000);
  const assertion = passkey.assert(grantChallenge({ ...grant, nonce, notAfter }), 'http://localhost:8080');
  return { grant, consent: { nonce, notAfter: timestampFromDate(notAfter), assertionJson: JSON.stringify(assertion) } };
}

/** What sync-worker sends: `a Spotify playlist per external id of the person's connection. */
function writeRequest(person: typeof here, externalIds: string[]) {
  return {
    userId: person.userId,
    connectionId: person.connectionId,
    integration: 'spotify',
    syncedAt: timestampFromDate(new Date()),
    records: externalIds.map((id) =>
      create(RecordInputSchema, {
        type: 'media.playlist',
        externalId: id,
        dataJson: Buffer.from(JSON.stringify({ source: 'spotify', id, name: `List ${id}`, public: true })),
      }),
    ),
  };
}

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'ps_query_fuzz',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  // Identity's answer: the passkey above (its signatures are real) for the two people, none for anyone else.
  answerRpc(harness.nc, rpc.identity.listUserPasskeys, ({ userId }) => ({
    passkeys:
      userId === here.userId || userId === there.userId
        ? [{ credentialId: passkey.credentialId, publicKey: passkey.publicKey }]
        : [],
  }));
  await harness.run({
    name: 'personal-server',
    module: AppModule,
    loadEnv,
    env: { SHARD_ID: String(SHARD), SHARD_COUNT: String(SHARDS), MASTER_KEY_FILE: join(keyDir, 'master.key') },
    shard: (env) => (env as Env).SHARD_ID,
  });
  // Grants and writes are answered by any shard: this one registers both people's.
  const client = new RpcClient(harness.nc);
  for (const person of [here, there]) {
    await client.request(rpc.personalServer.registerGrant, grantRequest(person));
    await client.request(rpc.personalServer.writeRecords, writeRequest(person, ['pl-0', 'pl-1', 'pl-2']));
  }
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

interface Answer {
  status: string | undefined;
  code?: string;
  records?: number;
}

/**
 * Sends raw bytes to the shard's query subject, with a deadline as the gateway sends one
 * (`headers: null`: no headers at all); the reply's status and its code, or how many records it carried.
 */
async function send(
  bytes: Uint8Array,
  headers: MsgHdrs | null = withDeadline(String(Date.now() + 5_000)),
): Promise<Answer> {
  if (!harness) throw new Error('the shard did not boot');
  const msg = await harness.nc.request(subject, bytes, { timeout: 5_000, ...(headers ? { headers } : {}) });
  const status = msg.headers?.get(Header.status);
  if (status === ReplyStatus.error) return { status, code: fromBinary(ErrorReplySchema, msg.data).code };
  const page = fromBinary(QueryRecordsResponseSchema, msg.data);
  return { status, records: (JSON.parse(Buffer.from(page.recordsJson).toString('utf8')) as unknown[]).length };
}

/** The `data` of each record on the page a query gets (which must be answered with a page). */
async function dataOf(bytes: Uint8Array): Promise<unknown[]> {
  const msg = await harness!.nc.request(subject, bytes, {
    timeout: 5_000,
    headers: withDeadline(String(Date.now() + 5_000)),
  });
  expect(msg.headers?.get(Header.status)).toBe(ReplyStatus.ok);
  const page = fromBinary(QueryRecordsResponseSchema, msg.data);
  return (JSON.parse(Buffer.from(page.recordsJson).toString('utf8')) as { data: unknown }[]).map((r) => r.data);
}

function query(extra: Partial<Omit<QueryRecordsRequest, '$typeName' | '$unknown'>> = {}): Uint8Array {
  return toBinary(
    QueryRecordsRequestSchema,
    create(QueryRecordsRequestSchema, { orgId, applicationId, connectionId: here.connectionId, limit: 10, ...extra }),
  );
}

function withDeadline(value: string): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.deadline, value);
  return h;
}

function varint(n: number): number[] {
  const bytes: number[] = [];
  for (; n >= 0x80; n >>>= 7) bytes.push((n & 0x7f) | 0x80);
  return [...bytes, n];
}

/** A protobuf field of wire type 2 (length-delimited): tag, length, bytes. */
function lengthDelimited(field: number, body: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint((field << 3) | 2), ...varint(body.length), ...body]);
}

const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const OK = { status: 'ok', records: 3 };
const refused = (code: string) => ({ status: 'error', code });

describe(`${subject} under fuzzed and hostile requests`, () => {
  it('answers a well-formed query of its own person with their records (the cases below differ from it)', async () => {
    expect(await send(query())).toEqual(OK);
  });

  // Past the catalog's checks only when a case's three ids are UUIDs: a few cases in the
  // default 150; the hand-made cases below reach every refusal of the handler for certain.
  it('answers fuzzed protobuf (valid, mutated, random) with a page or a typed error, never internal, storing nothing', async () => {
    const db = harness!.db;
    // fuzzRpcSubject sends to the descriptor's own subject, which is shard 0's: this shard's.
    expect(subject).toBe(rpc.personalServer.shardQuery.subject);
    const summary = await fuzzRpcSubject(rpc.personalServer.shardQuery, {
      nc: harness!.nc,
      runs: fuzzRuns(150),
      // This shard's own readiness: ps.v1.health also asks shard 1, which this file does not run.
      health: rpc.personalServer.shardHealth,
      rowCounts: () => countRows(db.pool, db.schema),
      known: [orgId, applicationId, here.connectionId, there.connectionId, here.userId, 'media.playlist'],
    });
    // The cases reached the decoder and the catalog's checks (the handler, only when a case's
    // three ids are UUIDs: rarely; the property below and the hand-made cases reach it).
    expect(summary.errors.malformed_request ?? 0).toBeGreaterThan(0);
    expect(summary.errors.validation_failed ?? 0).toBeGreaterThan(0);
  }, 120_000);

  // From the well-formed query, one field at a time: every case reaches the handler.
  it('answers its own query with one field fuzzed with a page or a typed error, never internal', async () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.constantFrom('', 'media.playlist', 'name', '\u0000', '__proto__'),
    );
    const field = fc.oneof(
      fc.record({ type: text }),
      fc.record({ sinceMs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
      fc.record({ sinceMs: fc.bigInt({ min: 0n, max: 9_000_000_000_000_000n }) }),
      fc.record({ cursor: fc.oneof(text, fc.base64String()) }),
      fc.record({ limit: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 1_000 })) }),
      fc.record({ fields: fc.array(text) }),
      fc.record({ policyTypes: fc.array(text) }),
    );
    const codes: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(field, async (extra) => {
        const answer = await send(query(extra));
        const key = answer.status === 'ok' ? 'ok' : String(answer.code);
        codes[key] = (codes[key] ?? 0) + 1;
        expect(answer.status === 'ok' || (answer.status === 'error' && answer.code !== 'internal')).toBe(true);
      }),
      fuzzParameters(fuzzRuns(150)),
    );
    expect(codes.ok).toBeGreaterThan(0);
    expect(await send(query())).toEqual(OK);
  }, 120_000);

  it('keeps only the fields asked for, ignoring ones no record has', async () => {
    const names = ['List pl-0', 'List pl-1', 'List pl-2'].map((name) => ({ name }));
    expect(await dataOf(query({ fields: ['name'] }))).toEqual(expect.arrayContaining(names));
    expect(await dataOf(query({ fields: ['name'] }))).toHaveLength(3);
    expect(await dataOf(query({ fields: ['__proto__', '', 'x\u0000', 'y'.repeat(100_000)] }))).toEqual([{}, {}, {}]);
    const many = Array.from({ length: 10_000 }, (_, i) => `f${i}`);
    expect(await dataOf(query({ fields: [...many, 'public'] }))).toEqual([
      { public: true },
      { public: true },
      { public: true },
    ]);
  });

  it.each<[string, () => Promise<Answer>, Answer]>([
    // Not protobuf, or protobuf broken the way a bad peer breaks it.
    ['random text', () => send(Buffer.from('SELECT * FROM records; --')), refused('malformed_request')],
    ['a truncated field', () => send(query().slice(0, 20)), refused('malformed_request')],
    [
      'an unterminated varint',
      () => send(concat(query(), Uint8Array.from([0x30, 0xff, 0xff, 0xff]))),
      refused('malformed_request'),
    ],
    [
      'a length beyond the message',
      () => send(concat(query(), Uint8Array.from([0x3a, 0xff, 0xff, 0x03]))),
      refused('malformed_request'),
    ],
    ['field number 0', () => send(concat(query(), Uint8Array.from([0x02, 0x00]))), refused('malformed_request')],
    // Known fields with the wrong wire type.
    [
      'connection_id as a varint',
      () => send(concat(query({ connectionId: '' }), Uint8Array.from([0x18, 0x05]))),
      refused('malformed_request'),
    ],
    [
      'limit as a string',
      () => send(concat(query({ limit: 0 }), lengthDelimited(6, Buffer.from('10')))),
      refused('malformed_request'),
    ],
    [
      'org_id as a fixed64',
      () => send(concat(Uint8Array.from([0x09, 1, 2, 3, 4, 5, 6, 7, 8]), query({ orgId: '' }))),
      refused('malformed_request'),
    ],
    [
      'invalid UTF-8 in type',
      () => send(concat(query(), lengthDelimited(4, Uint8Array.from([0xc3, 0x28])))),
      refused('malformed_request'),
    ],
    // Unknown fields are skipped, as protobuf says, however large (here 512 KiB).
    [
      'unknown fields',
      () =>
        send(
          concat(query(), lengthDelimited(99, new Uint8Array(512 * 1024)), Uint8Array.from([...varint(101 << 3), 1])),
        ),
      OK,
    ],
    // Well-formed, refused by the catalog's checks.
    ['nothing at all', () => send(new Uint8Array()), refused('validation_failed')],
    ['an id that is not a UUID', () => send(query({ connectionId: 'conn-1' })), refused('validation_failed')],
    [
      'a NUL in an id',
      () => send(query({ orgId: `${orgId.slice(0, 10)}\u0000${orgId.slice(11)}` })),
      refused('validation_failed'),
    ],
    ['a 500,000-character cursor', () => send(query({ cursor: 'c'.repeat(500_000) })), refused('validation_failed')],
    ['a 500,000-character org id', () => send(query({ orgId: 'o'.repeat(500_000) })), refused('validation_failed')],
    ['a NUL in the type', () => send(query({ type: 'media.\u0000playlist' })), refused('validation_failed')],
    [
      'a NUL in a policy type',
      () => send(query({ policyTypes: ['media.playlist', 'a\u0000b'] })),
      refused('validation_failed'),
    ],
    // The gateway's since=9999-12-31T23:59:59.999-05:00: a time in the year 10000, nothing after it.
    [
      'since a time in the year 10000',
      () => send(query({ sinceMs: 253_402_318_799_999n })),
      { status: 'ok', records: 0 },
    ],
    [
      'since the last time a Date holds',
      () => send(query({ sinceMs: 8_640_000_000_000_000n })),
      { status: 'ok', records: 0 },
    ],
    [
      'since a time no Date holds',
      () => send(query({ sinceMs: 8_640_000_000_000_001n })),
      refused('validation_failed'),
    ],
    ['since the largest int64', () => send(query({ sinceMs: 2n ** 63n - 1n })), refused('validation_failed')],
    ['since before the epoch', () => send(query({ sinceMs: -(2n ** 63n) })), OK],
    ['limit 0', () => send(query({ limit: 0 })), refused('validation_failed')],
    ['limit 2^32 - 1', () => send(query({ limit: 2 ** 32 - 1 })), refused('validation_failed')],
    // Past the checks, refused by the shard.
    [
      'a cursor it did not issue',
      () => send(query({ cursor: Buffer.from('v2:1').toString('base64url') })),
      refused('validation_failed'),
    ],
    [
      'a 10,000-type policy filter of nonsense',
      () => send(query({ policyTypes: Array.from({ length: 10_000 }, (_, i) => `t${i}`) })),
      { status: 'ok', records: 0 },
    ],
    ['a type the grant does not cover', () => send(query({ type: 'media.play_event' })), refused('scope_not_granted')],
    ['a type that is no record type', () => send(query({ type: 'x'.repeat(200) })), refused('scope_not_granted')],
    ['a connection nobody has', () => send(query({ connectionId: randomUUID() })), refused('connection_not_found')],
    ['another organization', () => send(query({ orgId: randomUUID() })), refused('connection_not_found')],
    ['another application', () => send(query({ applicationId: randomUUID() })), refused('connection_not_found')],
    [
      'the person id in place of the connection id',
      () => send(query({ connectionId: here.userId })),
      refused('connection_not_found'),
    ],
    [
      'a connection the other shard serves',
      () => send(query({ connectionId: there.connectionId })),
      refused('wrong_shard'),
    ],
    // Headers: none at all, a deadline that is no time (both: no deadline), one that has passed.
    ['no headers', () => send(query(), null), OK],
    ['empty headers', () => send(query(), natsHeaders()), OK],
    ['a deadline that is not a number', () => send(query(), withDeadline('tomorrow')), OK],
    [
      'a deadline in the past',
      () => send(query(), withDeadline(String(Date.now() - 1_000))),
      refused('deadline_exceeded'),
    ],
  ])('%s', async (_name, ask, expected) => {
    expect(await ask()).toEqual(expected);
    // The shard keeps answering its own person.
    expect(await send(query())).toEqual(OK);
  });

  it('a request to a shard nobody runs gets no answer from this one', async () => {
    const other = rpc.personalServer.shardQuery.shardSubject!(1 - SHARD);
    await expect(
      harness!.nc.request(other, query({ connectionId: there.connectionId }), { timeout: 1_000 }),
    ).rejects.toThrow();
    expect(await send(query())).toEqual(OK);
  });

  it('is still ready after all of it', async () => {
    const client = new RpcClient(harness!.nc);
    expect((await client.request(rpc.personalServer.shardHealth, {})).ready).toBe(true);
  });
});

// The shard's other subjects have no query contract that checks for NULs: StorableStringsInterceptor
// refuses a NUL in any of their strings (without it, Postgres text refused these: `internal`).
// The requests are otherwise valid (real passkey signatures), so only the NUL refuses them.
describe('ps.v1.* with a NUL in a string bound for Postgres', () => {
  const client = () => new RpcClient(harness!.nc);

  it.each([
    [
      'register_grant, in a scope',
      () => client().request(rpc.personalServer.registerGrant, grantRequest(there, ['a\u0000b'])),
    ],
    [
      'write_records, in an external id',
      () => client().request(rpc.personalServer.writeRecords, writeRequest(there, ['pl\u0000'])),
    ],
  ])('%s: validation_failed, nothing stored', async (_name, ask) => {
    const db = harness!.db;
    const before = await countRows(db.pool, db.schema);
    await expect(ask()).rejects.toMatchObject({ code: 'validation_failed' });
    expect(await countRows(db.pool, db.schema)).toEqual(before);
  });

  // So the NUL is what refused them (the person on the other shard: any shard answers these,
  // and the query cases above keep their person's three records).
  it('the same requests without a NUL are served', async () => {
    await expect(client().request(rpc.personalServer.registerGrant, grantRequest(there))).resolves.toBeDefined();
    const written = await client().request(rpc.personalServer.writeRecords, writeRequest(there, ['pl-9']));
    expect(written.written).toBe(1);
  });
});
