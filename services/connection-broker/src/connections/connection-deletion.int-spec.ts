import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { TestClock } from '@context-gateway/clock/testing';
import { createPool } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import type { AppError } from '@context-gateway/errors';
import { ensureStreams, RpcClient } from '@context-gateway/messaging';
import { answerRpc, type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import {
  ConnectDecision,
  ConnectionStatus,
  personalServerRpc,
  rpc,
  type RpcDescriptor,
  streams,
} from '@context-gateway/proto';
import { Metrics } from '@context-gateway/service-kit';
import { completeAuthorization, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { INestMicroservice } from '@nestjs/common';

import { loadEnv } from '../env.js';
import { answerConsentCheck, signedConsent } from '../grants/testing/consent-checks.js';
import { SignedInPeople } from '../people/testing/signed-in-people.js';
import { brokerUnderTest } from '../testing/broker-under-test.js';
import { BACKOFF_CAP_MS, ConnectionDeletionsRelay, retryDelayMs } from './connection-deletions.relay.js';

// Deleting a connection against a real broker (its Nest modules on a private nats-server and a
// throw-away schema, a simulated OAuth source) and a Personal Server shard that answers
// ps.v1.* on the same bus and can go down and come back. The shard here keeps the state a shard
// keeps for these calls (grants, shredded connections) and answers as the real one does: its
// own behaviour (idempotent shredding, a backup that stays unreadable) is tested in
// services/personal-server (records.int-spec.ts) and the whole path in test-e2e/connect.
const GATEWAY = 'http://gateway.test';
const REDIRECT = `${GATEWAY}/v1/connect/callback`;
const CALLBACK = 'https://app.example/callback';
const ORG = randomUUID();
const APP = randomUUID();
const logger = createLogger({ service: 'connection-broker-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const clock = new TestClock();

let nats: PrivateNats;
let nc: NatsConnection;
/** identity's answer to who holds a session token (people/testing). */
let people: SignedInPeople;
const signedIn = (userId: string) => people.sessionOf(userId);
let db: TestSchema;
let keysDir: string;
let demo: RunningSimulator;
let client: RpcClient;
let boot: () => Promise<INestMicroservice>;
let broker: INestMicroservice;

/** The shard's side of the calls the broker makes, in the order they arrived. */
class Shard {
  readonly calls: { subject: string; connectionId: string }[] = [];
  readonly activeGrants = new Set<string>();
  readonly shredded = new Set<string>();
  #subscriptions: Subscription[] = [];

  get up(): boolean {
    return this.#subscriptions.length > 0;
  }

  start(): void {
    this.answer(personalServerRpc.provision, () => ({ personalServerId: randomUUID(), shard: 0 }));
    this.answer(personalServerRpc.registerGrant, (m) => {
      if (m.grant) this.activeGrants.add(m.grant.grantId);
      return { grant: m.grant, shard: 0 };
    });
    this.answer(personalServerRpc.revokeGrant, (m) => {
      this.calls.push({ subject: 'revoke_grant', connectionId: m.connectionId || m.grantId });
      this.activeGrants.delete(m.grantId);
      return {};
    });
    this.answer(personalServerRpc.deleteConnection, (m) => {
      this.calls.push({ subject: 'delete_connection', connectionId: m.connectionId });
      // Idempotent, as the real one: a connection shredded before confirms again, with nothing left.
      const first = !this.shredded.has(m.connectionId);
      this.shredded.add(m.connectionId);
      return { recordsDeleted: first ? 3 : 0, grantsRevoked: 0 };
    });
  }

  /** Down: nobody answers ps.v1.* (NATS says "no responders" at once, as when every shard is stopped). */
  async stop(): Promise<void> {
    for (const s of this.#subscriptions.splice(0)) s.unsubscribe();
    await nc.flush();
  }

  private answer<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    reply: (request: MessageShape<Req>) => MessageInitShape<Res>,
  ): void {
    this.#subscriptions.push(
      nc.subscribe(descriptor.subject, {
        callback: (_error, msg) => {
          const request = fromBinary(descriptor.request, msg.data);
          msg.respond(toBinary(descriptor.response, create(descriptor.response, reply(request))));
        },
      }),
    );
  }
}
const shard = new Shard();

beforeAll(async () => {
  nats = await startPrivateNats();
  keysDir = mkdtempSync(join(tmpdir(), 'broker-deletion-keys-'));
  nc = await connect({ servers: nats.url });
  people = SignedInPeople.answerOn(nc, clock);
  // Consents are checked by any shard; these tests take down the shard's deletions, not that.
  answerRpc(nc, personalServerRpc.checkConsent, (m) => answerConsentCheck(m, m.consent));
  await ensureStreams(nc, [streams.syncJobs, streams.syncEvents, streams.control, streams.deadLetters], logger);
  db = await createTestSchema({
    prefix: 'broker_deletion',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  demo = await startSimulator({
    provider: 'demo',
    clients: [{ clientId: 'cg-demo', clientSecret: 'cg-demo-secret', redirectUris: [REDIRECT] }],
  });
  const env = loadEnv({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    GATEWAY_PUBLIC_URL: GATEWAY,
    MASTER_KEY_FILE: join(keysDir, 'keys', 'master.key'),
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_DEMO_BASE_URL: demo.url,
    INTEGRATION_DEMO_CLIENT_ID: 'cg-demo',
    INTEGRATION_DEMO_CLIENT_SECRET: 'cg-demo-secret',
  });
  boot = async () => {
    // Its own connections: closing the broker closes them, as a process exit would.
    const brokerNc = await connect({ servers: nats.url });
    const pool = createPool({ url: db.url, schema: db.schema, applicationName: 'broker-deletion-test', max: 5 });
    const instance = await brokerUnderTest({
      env,
      db,
      nc: brokerNc,
      clock,
      logger,
      queue: 'connection-broker',
      pool,
    });
    await instance.listen();
    // Its subscriptions are on the server before anyone asks (the test's client is another connection).
    await brokerNc.flush();
    return instance;
  };
  broker = await boot();
  client = new RpcClient(nc);
  shard.start();
}, 60_000);

afterAll(async () => {
  await broker?.close().catch(() => undefined);
  await shard.stop().catch(() => undefined);
  await nc?.close();
  await demo?.stop();
  await db?.drop().catch(() => undefined);
  await nats?.stop();
  rmSync(keysDir, { recursive: true, force: true });
});

/** What the consent page has the person's passkey sign (grants/testing: the challenge, named). */
async function consentOf(sessionToken: string, userId: string): Promise<string> {
  const view = await client.request(rpc.broker.getConnectSession, {
    sessionToken,
    personSessionToken: signedIn(userId),
  });
  return signedConsent(view.consentChallenge);
}

/** A connection of a new person with APP's grant on it, through the real connect flow. */
async function connected(userId: string = randomUUID()): Promise<{ userId: string; connectionId: string }> {
  const session = await client.request(rpc.broker.createConnectSession, {
    orgId: ORG,
    applicationId: APP,
    applicationName: 'App',
    integration: 'demo',
    scopes: ['demo:read:notes'],
    callbackUrl: CALLBACK,
  });
  const decided = await client.request(rpc.broker.decideConnectSession, {
    sessionToken: session.sessionToken,
    decision: ConnectDecision.ALLOW,
    personSessionToken: signedIn(userId),
    consentAssertionJson: await consentOf(session.sessionToken, userId),
  });
  const { redirect } = await completeAuthorization(decided.redirectUrl, { login: 'alice' });
  const done = await client.request(rpc.broker.completeAuthorization, {
    callbackQuery: redirect.search.slice(1),
    stateCookie: decided.oauthState,
    personSessionToken: signedIn(userId),
  });
  return { userId, connectionId: done.connectionId };
}

async function statusInList(userId: string, connectionId: string): Promise<ConnectionStatus | 'absent'> {
  const { connections } = await client.request(rpc.broker.listUserConnections, {
    personSessionToken: signedIn(userId),
  });
  return connections.find((c) => c.connection?.id === connectionId)?.connection?.status ?? 'absent';
}

async function outboxRow(connectionId: string) {
  const { rows } = await db.pool.query<{ attempts: number; last_error: string | null; confirmed: boolean }>(
    'SELECT attempts, last_error, confirmed_at IS NOT NULL AS confirmed FROM connection_deletions WHERE connection_id = $1',
    [connectionId],
  );
  return rows[0];
}

/** One gauge of the broker's /metrics, as Prometheus would scrape it. */
async function gauge(name: string): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the gauges' one-second reuse
  const { body } = await broker.get(Metrics).scrape();
  const line = body.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return Number(line?.split(' ').at(-1));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as AppError).code;
  }
  throw new Error('expected a rejection');
}

describe('deleting a connection', () => {
  it('revokes at the shard before anything commits here, and is deleted once the shard confirms the shredding', async () => {
    const { userId, connectionId } = await connected();
    expect(await statusInList(userId, connectionId)).toBe(ConnectionStatus.ACTIVE);
    shard.calls.length = 0;

    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId,
      personSessionToken: signedIn(userId),
    });

    expect(removed.status).toBe(ConnectionStatus.DELETED);
    // Revoked at the shard first, then shredded there: both before the person got the answer.
    expect(shard.calls.map((c) => c.subject)).toEqual(['revoke_grant', 'delete_connection']);
    expect(shard.shredded.has(connectionId)).toBe(true);
    expect(await outboxRow(connectionId)).toEqual({ attempts: 1, last_error: null, confirmed: true });
    expect(await statusInList(userId, connectionId)).toBe('absent');
    expect(
      await codeOf(client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP, connectionId })),
    ).toBe('connection_not_found');
    // A second delete finds nothing to delete.
    expect(
      await codeOf(client.request(rpc.broker.removeConnection, { connectionId, personSessionToken: signedIn(userId) })),
    ).toBe('connection_not_found');
  });

  it('needs a recent passkey use: an old session can neither revoke nor delete, nor allow without a signature', async () => {
    const { userId, connectionId } = await connected();
    people.passkeyUsedAgo(userId, 6 * 60_000);
    shard.calls.length = 0;

    expect(
      await codeOf(client.request(rpc.broker.removeConnection, { connectionId, personSessionToken: signedIn(userId) })),
    ).toBe('reauthentication_required');
    expect(
      await codeOf(
        client.request(rpc.broker.revokeGrant, {
          connectionId,
          applicationId: APP,
          personSessionToken: signedIn(userId),
        }),
      ),
    ).toBe('reauthentication_required');
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP,
      applicationName: 'App',
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: CALLBACK,
    });
    expect(
      await codeOf(
        client.request(rpc.broker.decideConnectSession, {
          sessionToken: session.sessionToken,
          decision: ConnectDecision.ALLOW,
          personSessionToken: signedIn(userId),
        }),
      ),
    ).toBe('passkey_signature_invalid');
    // Allowing needs the passkey's signature, not a recent session: signed, the old session allows.
    const signed = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP,
      applicationName: 'App',
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: CALLBACK,
    });
    const allowed = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: signed.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(userId),
      consentAssertionJson: await consentOf(signed.sessionToken, userId),
    });
    expect(allowed.connectionId || allowed.redirectUrl).toBeTruthy();
    expect(shard.calls).toEqual([]);
    expect(await statusInList(userId, connectionId)).toBe(ConnectionStatus.ACTIVE);
    // Listing is not a change: a live session still sees its connections. Denying needs nothing.
    await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.DENY,
      personSessionToken: signedIn(userId),
    });

    // Once the person confirmed with their passkey, the same calls go through.
    people.passkeyUsedAgo(userId, 0);
    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId,
      personSessionToken: signedIn(userId),
    });
    expect(removed.status).toBe(ConnectionStatus.DELETED);
  });

  it('with the shard down: deleting, retried with growing backoff, deleted when the shard is back', async () => {
    const { userId, connectionId } = await connected();
    await shard.stop();
    const relay = broker.get(ConnectionDeletionsRelay);

    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId,
      personSessionToken: signedIn(userId),
    });

    expect(removed.status).toBe(ConnectionStatus.DELETING);
    expect(removed.revokedAtSource).toBe(true);
    expect(await statusInList(userId, connectionId)).toBe(ConnectionStatus.DELETING);
    // The apps lost it at once: their grants are revoked here, whatever the shard heard.
    expect(
      await codeOf(client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP, connectionId })),
    ).toBe('connection_not_found');
    expect(await codeOf(client.request(rpc.broker.getAccessToken, { connectionId }))).toBe('connection_not_found');
    // Operators see it waiting (deploy/monitoring alerts on the oldest).
    expect(await gauge('connection_deletions_pending')).toBe(1);
    // Connecting the same source again must wait: the shredding still owed would hit the same connection id.
    expect(await codeOf(connected(userId))).toBe('conflict');
    expect(await outboxRow(connectionId)).toEqual({
      attempts: 1,
      last_error: 'service_unavailable',
      confirmed: false,
    });

    // Not due yet: the sweep leaves it alone.
    await relay.sweep();
    expect((await outboxRow(connectionId))?.attempts).toBe(1);
    // Due: tried again, failed again, and the next wait is longer.
    clock.advance(retryDelayMs(1));
    await relay.sweep();
    expect((await outboxRow(connectionId))?.attempts).toBe(2);
    clock.advance(retryDelayMs(1));
    await relay.sweep();
    expect((await outboxRow(connectionId))?.attempts).toBe(2);
    expect(retryDelayMs(2)).toBeGreaterThan(retryDelayMs(1));
    expect(retryDelayMs(100)).toBe(BACKOFF_CAP_MS);

    shard.start();
    clock.advance(retryDelayMs(2));
    expect(await relay.sweep()).toBe(1);
    expect(shard.shredded.has(connectionId)).toBe(true);
    expect(await outboxRow(connectionId)).toEqual({ attempts: 3, last_error: null, confirmed: true });
    expect(await statusInList(userId, connectionId)).toBe('absent');
    expect(await gauge('connection_deletions_pending')).toBe(0);
    // Once deleted, connecting it again works (the connection id is reused, active again).
    expect((await connected(userId)).connectionId).toBe(connectionId);
    expect(await statusInList(userId, connectionId)).toBe(ConnectionStatus.ACTIVE);
    // Confirmed deliveries are never sent again.
    const sent = shard.calls.length;
    clock.advance(BACKOFF_CAP_MS);
    await relay.sweep();
    expect(shard.calls.length).toBe(sent);
  });

  it('a deletion the broker could not deliver before it restarted is picked up by the next process at boot', async () => {
    const { userId, connectionId } = await connected();
    await shard.stop();
    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId,
      personSessionToken: signedIn(userId),
    });
    expect(removed.status).toBe(ConnectionStatus.DELETING);

    await broker.close();
    shard.start();
    clock.advance(BACKOFF_CAP_MS);
    broker = await boot();

    const deadline = Date.now() + 15_000;
    while (!(await outboxRow(connectionId))?.confirmed && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await outboxRow(connectionId)).toMatchObject({ confirmed: true, last_error: null });
    expect(shard.shredded.has(connectionId)).toBe(true);
    expect(await statusInList(userId, connectionId)).toBe('absent');
  });
});
