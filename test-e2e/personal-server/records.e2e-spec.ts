import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { create } from '@bufbuild/protobuf';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { grantChallenge } from '@context-gateway/crypto';
import { JetStreamPublisher, RpcClient } from '@context-gateway/messaging';
import { ErrorReplySchema, events, GrantStatus, RecordInputSchema, rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import type { SignedInPerson } from '../support/soft-passkey.mjs';
import { newPerson } from '../support/source-connection.js';
import { rootDir, startTestStack, type TestStack } from '../support/test-stack.js';

// Personal Servers end to end: two shard processes, records written through the write
// contract (what sync-worker calls), grants registered and revoked through the contracts
// connection-broker calls, apps reading over the public HTTP API with their API keys.
let stack: TestStack;
let nc: NatsConnection;
let client: RpcClient;
let publisher: JetStreamPublisher;
let admin: ReturnType<typeof adminClient>;
let orgId: string;
const apps: Record<'playlists' | 'history', { id: string; key: string }> = {} as never;

beforeAll(async () => {
  stack = await startTestStack('personal-server-records', { OPERATOR_TOKEN, SHARD_COUNT: '2' });
  nc = await connect(stack.natsOptions());
  client = new RpcClient(nc);
  publisher = new JetStreamPublisher(nc);
  admin = adminClient(stack.gatewayUrl);
  orgId = (await admin.createOrganization('Records Org')).id;
  // The org layer allows nothing until an admin enables the integration (docs/policy.md).
  expect(
    (await admin.call('PUT', `/v1/admin/organizations/${orgId}/policy/integrations`, { integrations: ['spotify'] }))
      .status,
  ).toBe(200);
  for (const [name, scopes] of [
    ['playlists', ['spotify:read:playlists']],
    ['history', ['spotify:read:recently_played']],
  ] as const) {
    const app = await admin.createApplication(orgId, {
      name,
      callbackUrls: ['https://app.example/cb'],
      integrations: ['spotify'],
      scopes: [...scopes],
    });
    apps[name] = { id: app.id, key: (await admin.issueApiKey(app.id)).secret };
  }
}, 180_000);

afterAll(async () => {
  await nc?.drain();
  await stack?.stop();
}, 60_000);

function playlist(n: number) {
  return create(RecordInputSchema, {
    type: 'media.playlist',
    externalId: `pl-${n}`,
    dataJson: Buffer.from(
      JSON.stringify({
        source: 'spotify',
        id: `pl-${n}`,
        name: `Playlist ${n}`,
        url: `https://open.spotify.example/playlist/${n}`,
      }),
    ),
    sourceUpdatedAt: timestampFromDate(new Date(Date.UTC(2026, 10, 1, 0, n))),
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
        creators: ['Band'],
        kind: 'music',
        playedAt: '2026-11-20T08:00:00Z',
      }),
    ),
  });
}

/** The person's signed consent to these terms (what the consent page has their passkey sign). */
async function consentOf(
  app: 'playlists' | 'history',
  person: SignedInPerson,
  scopes: string[],
  nonce: string = randomUUID(),
) {
  const notAfter = new Date(Date.now() + 10 * 60_000);
  const challenge = grantChallenge({
    userId: person.userId,
    orgId,
    applicationId: apps[app].id,
    integration: 'spotify',
    scopes,
    nonce,
    notAfter,
  });
  return { nonce, notAfter: timestampFromDate(notAfter), assertionJson: await person.sign(challenge) };
}

/**
 * What connection-broker does after a consent: register the grant at the Personal Server
 * (ps.v1.register_grant, with the person's signed consent), then publish
 * control.v1.grant_changed (policy derives the user layer's allows from it).
 */
async function registerGrant(
  app: 'playlists' | 'history',
  person: SignedInPerson,
  connectionId: string,
  scopes: string[],
) {
  const grantId = randomUUID();
  const { userId } = person;
  const reply = await client.request(rpc.personalServer.registerGrant, {
    grant: { grantId, orgId, applicationId: apps[app].id, userId, connectionId, integration: 'spotify', scopes },
    consent: await consentOf(app, person, scopes),
  });
  await publisher.publish(events.grantChanged, {
    eventId: randomUUID(),
    grantId,
    orgId,
    applicationId: apps[app].id,
    userId,
    connectionId,
    integration: 'spotify',
    scopes,
    status: GrantStatus.ACTIVE,
    revision: 1n,
    occurredAt: timestampFromDate(new Date()),
  });
  return { grantId, shard: reply.shard };
}

/** A user with one Spotify connection that both apps hold grants on; returns the grant ids. */
async function seedConnection(person: SignedInPerson, connectionId: string) {
  const { userId } = person;
  const grants: Record<string, string> = {};
  let shard = -1;
  for (const [name, scopes] of [
    ['playlists', ['spotify:read:playlists']],
    ['history', ['spotify:read:recently_played']],
  ] as const) {
    const registered = await registerGrant(name, person, connectionId, [...scopes]);
    grants[name] = registered.grantId;
    shard = registered.shard;
  }
  const written = await client.request(rpc.personalServer.writeRecords, {
    userId,
    connectionId,
    integration: 'spotify',
    records: [playlist(1), playlist(2), playlist(3), play(1), play(2)],
    syncedAt: timestampFromDate(new Date()),
  });
  expect(written).toMatchObject({ written: 5, unchanged: 0 });
  return { grants, shard };
}

/** What these tests read of the records API's answer: a page, or a problem's code. */
interface RecordsAnswer {
  records: { id: string; type: string; externalId: string; deleted: boolean; data: Record<string, unknown> }[];
  nextCursor: string | null;
  syncedAt: string;
  code?: string;
}

async function query(app: 'playlists' | 'history', connectionId: string, params = '') {
  const response = await fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/records${params}`, {
    headers: { authorization: `Bearer ${apps[app].key}` },
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: (await response.json()) as RecordsAnswer,
  };
}

const SCOPES = ['spotify:read:playlists'];

describe('records through the gateway', () => {
  let userId = '';
  const connectionId = randomUUID();
  let grants: Record<string, string>;

  beforeAll(async () => {
    const person = await newPerson(stack.gatewayUrl);
    userId = person.userId;
    ({ grants } = await seedConnection(person, connectionId));
  });

  it('two apps on one connection each see only the types their scopes cover', async () => {
    const lists = await query('playlists', connectionId);
    expect(lists.status).toBe(200);
    expect(lists.body.records.map((r: { externalId: string }) => r.externalId).sort()).toEqual([
      'pl-1',
      'pl-2',
      'pl-3',
    ]);
    expect(lists.body.records[0]).toMatchObject({
      type: 'media.playlist',
      deleted: false,
      data: { source: 'spotify', name: expect.stringMatching(/^Playlist/) },
    });
    expect(Date.parse(lists.body.syncedAt)).toBeGreaterThan(Date.now() - 60_000);

    const history = await query('history', connectionId);
    expect(history.body.records.map((r: { type: string }) => r.type)).toEqual(['media.play_event', 'media.play_event']);

    const denied = await query('history', connectionId, '?type=media.playlist');
    expect(denied.status).toBe(403);
    expect(denied.contentType).toMatch(/^application\/problem\+json/);
    expect(denied.body).toMatchObject({ code: 'scope_not_granted' });
  });

  it('pages with a cursor, projects fields, and refuses what it does not know', async () => {
    const first = await query('playlists', connectionId, '?limit=2&fields=name');
    expect(first.body.records).toHaveLength(2);
    expect(Object.keys(first.body.records[0]!.data)).toEqual(['name']);
    const second = await query(
      'playlists',
      connectionId,
      `?limit=2&fields=name&cursor=${encodeURIComponent(first.body.nextCursor!)}`,
    );
    expect(second.body.records).toHaveLength(1);
    expect(second.body.nextCursor).toBeNull();
    expect((await query('playlists', connectionId, '?limit=501')).status).toBe(422);
    expect((await query('playlists', connectionId, '?type=calendar.event')).status).toBe(422);
    expect((await query('playlists', connectionId, '?colour=red')).body).toMatchObject({ code: 'unknown_field' });
  });

  it("registers no grant without the person's signature: none, another grant's, or one replayed", async () => {
    const person = await newPerson(stack.gatewayUrl);
    const connection = randomUUID();
    const grant = (grantId: string, scopes: string[]) => ({
      grantId,
      orgId,
      applicationId: apps.playlists.id,
      userId: person.userId,
      connectionId: connection,
      integration: 'spotify',
      scopes,
    });
    const code = (promise: Promise<unknown>) =>
      promise.then(
        () => 'ok',
        (error: { code?: string }) => error.code,
      );
    // What a caller holding the broker's NATS identity could send: no consent at all.
    expect(await code(client.request(rpc.personalServer.registerGrant, { grant: grant(randomUUID(), SCOPES) }))).toBe(
      'validation_failed',
    );
    // The person's signature over other terms (the history app's scopes) for this grant.
    const forHistory = await consentOf('playlists', person, ['spotify:read:recently_played']);
    expect(
      await code(
        client.request(rpc.personalServer.registerGrant, { grant: grant(randomUUID(), SCOPES), consent: forHistory }),
      ),
    ).toBe('passkey_signature_invalid');
    // Signed for this grant: registered; replayed for another grant id: refused.
    const signed = await consentOf('playlists', person, SCOPES);
    expect(
      await code(
        client.request(rpc.personalServer.registerGrant, { grant: grant(randomUUID(), SCOPES), consent: signed }),
      ),
    ).toBe('ok');
    expect(
      await code(
        client.request(rpc.personalServer.registerGrant, { grant: grant(randomUUID(), SCOPES), consent: signed }),
      ),
    ).toBe('passkey_signature_invalid');
  });

  it('a connection the app holds no grant on is 404, exactly like one that does not exist', async () => {
    const other = randomUUID();
    await registerGrant('history', await newPerson(stack.gatewayUrl), other, ['spotify:read:recently_played']);
    const notGranted = await query('playlists', other);
    const missing = await query('playlists', randomUUID());
    expect([notGranted.status, missing.status]).toEqual([404, 404]);
    expect(notGranted.body.code).toBe('connection_not_found');
    expect(missing.body.code).toBe('connection_not_found');
    expect((await fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/records`)).status).toBe(401);
  });

  it('every query passes the three-layer policy: an org deny is policy_denied, yet no grant is still 404', async () => {
    const rule = await admin.call<{ rule: { id: string } }>('POST', `/v1/admin/organizations/${orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'spotify:read:recently_played',
    });
    expect(rule.status).toBe(201);
    try {
      const denied = await query('history', connectionId);
      expect(denied.status).toBe(403);
      expect(denied.body).toMatchObject({ code: 'policy_denied' });
      expect((await query('history', randomUUID())).status).toBe(404);
      expect((await query('playlists', connectionId)).status).toBe(200); // other scopes unaffected
    } finally {
      await admin.call('DELETE', `/v1/admin/organizations/${orgId}/policy/rules/${rule.body.rule.id}`);
    }
    expect((await query('history', connectionId)).status).toBe(200);
  });

  it('revoking one app fails its very next query while the other app keeps reading', async () => {
    expect((await query('playlists', connectionId)).status).toBe(200); // placement cached, warm path
    await client.request(rpc.personalServer.revokeGrant, { grantId: grants.playlists!, userId });
    const revoked = await query('playlists', connectionId);
    expect(revoked.status).toBe(403);
    expect(revoked.body).toMatchObject({ code: 'grant_revoked' });
    expect((await query('history', connectionId)).status).toBe(200);
  });

  it('a revocation published on CONTROL (broker committed, its call to the shard lost) is applied too', async () => {
    const late = await newPerson(stack.gatewayUrl);
    const lateUser = late.userId;
    const lateConnection = randomUUID();
    const { grantId } = await registerGrant('history', late, lateConnection, ['spotify:read:recently_played']);
    expect((await query('history', lateConnection)).status).toBe(200);
    await publisher.publish(events.grantChanged, {
      eventId: randomUUID(),
      grantId,
      orgId,
      applicationId: apps.history.id,
      userId: lateUser,
      connectionId: lateConnection,
      integration: 'spotify',
      scopes: ['spotify:read:recently_played'],
      status: GrantStatus.REVOKED,
      revision: 2n,
      occurredAt: timestampFromDate(new Date()),
    });
    const deadline = Date.now() + 10_000;
    let last = 0;
    while (Date.now() < deadline) {
      const result = await query('history', lateConnection);
      last = result.status;
      // policy's user layer also follows the event (policy_denied); the shard says grant_revoked
      if (result.body.code === 'grant_revoked') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const final = await query('history', lateConnection);
    expect(final.body.code).toBe('grant_revoked');
    expect(last).toBe(403);
  });

  it('deleting the connection makes every query on it 404', async () => {
    expect(await client.request(rpc.personalServer.deleteConnection, { connectionId, userId })).toMatchObject({
      recordsDeleted: 5,
    });
    expect((await query('history', connectionId)).status).toBe(404);
  });
});

describe('revocation routes (through connection-broker, which owns grants)', () => {
  it('an app giving up a grant it does not hold gets 404; the user route needs a signed-in user', async () => {
    const giveUp = await fetch(`${stack.gatewayUrl}/v1/connections/${randomUUID()}/grant`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${apps.history.key}` },
    });
    expect(giveUp.status).toBe(404);
    expect(await giveUp.json()).toMatchObject({ code: 'connection_not_found' });
    const anonymous = await fetch(`${stack.gatewayUrl}/v1/me/connections/${randomUUID()}/grants/${apps.history.id}`, {
      method: 'DELETE',
    });
    expect(anonymous.status).toBe(401);
  });
});

describe('sharding', () => {
  it('places users on both shards and routes each query to the owner', async () => {
    const byShard = new Map<number, string>();
    for (let i = 0; i < 40 && byShard.size < 2; i += 1) {
      const connectionId = randomUUID();
      const { shard } = await seedConnection(await newPerson(stack.gatewayUrl), connectionId);
      byShard.set(shard, connectionId);
    }
    expect([...byShard.keys()].sort()).toEqual([0, 1]);
    for (const connectionId of byShard.values()) {
      const page = await query('history', connectionId);
      expect(page.status).toBe(200);
      expect(page.body.records).toHaveLength(2);
    }
  });

  it('after a rebalance moves users, the gateway follows them (stale placement → wrong_shard → re-locate)', async () => {
    let connectionId = '';
    for (let i = 0; i < 40 && connectionId === ''; i += 1) {
      const candidate = randomUUID();
      if ((await seedConnection(await newPerson(stack.gatewayUrl), candidate)).shard === 1) connectionId = candidate;
    }
    expect(connectionId).not.toBe('');
    expect((await query('history', connectionId)).status).toBe(200); // placement (shard 1) now cached in the gateway
    // The operator's rebalance, as if shrinking to one shard: everyone on shard 1 moves to 0.
    const cli = join(rootDir, 'services/personal-server/dist/directory/rebalance.cli.js');
    const env = { ...process.env, DATABASE_URL: stack.databaseUrl, SHARD_COUNT: '1', LOG_LEVEL: 'silent' };
    const plan = await promisify(execFile)(process.execPath, [cli], { env });
    expect(plan.stdout).toMatch(/shard 1 → 0: \d+/);
    const applied = await promisify(execFile)(process.execPath, [cli, '--apply'], { env });
    expect(applied.stdout).toMatch(/switched \d+/);
    const after = await query('history', connectionId);
    expect(after.status).toBe(200);
    expect(after.body.records).toHaveLength(2);
    // Two CLI processes (each a Node start and a database connection) take longer than Jest's
    // default 5 s on a loaded 2-core machine.
  }, 60_000);

  it('every personal-server subject, on every shard, answers garbage with a typed error', async () => {
    const subjects = Object.values(rpc.personalServer).flatMap((d) =>
      d.shardSubject ? [d.shardSubject(0), d.shardSubject(1)] : [d.subject],
    );
    for (const subject of subjects) {
      const reply = await nc.request(subject, new TextEncoder().encode('{"not":"protobuf"}'), { timeout: 3_000 });
      expect({ subject, status: reply.headers?.get('cg-status') }).toEqual({ subject, status: 'error' });
      expect(['malformed_request', 'validation_failed']).toContain(fromBinary(ErrorReplySchema, reply.data).code);
    }
  });

  it('/v1/health reports personal-server ready only with every shard answering', async () => {
    const health = (await (
      await fetch(`${stack.gatewayUrl}/v1/health`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } })
    ).json()) as {
      services: Record<string, { ready: boolean; checks?: Record<string, string> }>;
    };
    expect(health.services['personal-server']).toMatchObject({ ready: true, checks: { shards: 'up' } });
  });
});

describe('while identity restarts', () => {
  it('apps keep reading with keys the gateway already knows', async () => {
    const connectionId = randomUUID();
    await seedConnection(await newPerson(stack.gatewayUrl), connectionId);
    expect((await query('playlists', connectionId)).status).toBe(200);
    await stack.stopService('identity');
    try {
      // identity is down: the gateway answers from its memory of the key (auth/api-key-cache.ts).
      for (let i = 0; i < 5; i += 1) expect((await query('playlists', connectionId)).status).toBe(200);
    } finally {
      await stack.restartService('identity');
    }
    expect((await query('playlists', connectionId)).status).toBe(200);
  }, 120_000);
});
