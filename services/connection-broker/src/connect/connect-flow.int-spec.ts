import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { TestClock } from '@context-gateway/clock/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { type AppError } from '@context-gateway/errors';
import { ensureStreams, JetStreamPublisher, RpcClient } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import {
  ConnectDecision,
  ConnectionStatus,
  events,
  GrantChangedSchema,
  GrantStatus,
  rpc,
  streams,
  SyncJobSchema,
  SyncReason,
  SyncRunOutcome,
} from '@context-gateway/proto';
import { completeAuthorization, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestMicroservice } from '@nestjs/common';

import { AccessTokensService } from '../connections/access-tokens.service.js';
import { ConnectionsRepository } from '../connections/connections.repository.js';
import { loadEnv } from '../env.js';
import { GrantEventsRelay, SWEEP_AFTER_MS } from '../grants/grant-events.relay.js';
import { GrantsRepository } from '../grants/grants.repository.js';
import { ConsentChecks, signedConsent } from '../grants/testing/consent-checks.js';
import { SignedInPeople } from '../people/testing/signed-in-people.js';
import { brokerUnderTest } from '../testing/broker-under-test.js';
import { CredentialVault } from '../vault/credential-vault.js';

// The broker as it runs, minus HTTP: its Nest modules on a private nats-server (so no other
// process answering broker.v1.* can interfere), a throw-away Postgres schema, and real
// simulated sources (tools/source-simulators) doing OAuth over HTTP.
const GATEWAY = 'http://gateway.test';
const REDIRECT = `${GATEWAY}/v1/connect/callback`;
const CALLBACK = 'https://app.example/callback';
const ORG = randomUUID();
const APP_A = randomUUID();
const APP_B = randomUUID();
const ALICE = randomUUID();
const logger = createLogger({ service: 'connection-broker-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
/** Both replicas' clock: expiry and the outbox sweep move when a test says so, not when it waits. */
const clock = new TestClock();
const TTL_SECONDS = 600;

let nats: PrivateNats;
/** The key-encryption keyring of this test's broker. */
let keysDir: string;
let nc: NatsConnection;
/** identity's answer to who holds a session token (people/testing). */
let people: SignedInPeople;
const signedIn = (userId: string) => people.sessionOf(userId);
/** The Personal Server's consent checks (grants/testing): each consent it accepted. */
let consents: ConsentChecks;
/**
 * What the consent page has the person's passkey sign for them: its challenge, "signed"
 * (grants/testing). Empty when the page cannot be shown (the session is used or expired).
 */
const consentOf = (sessionToken: string, personSessionToken: string) =>
  client.request(rpc.broker.getConnectSession, { sessionToken, personSessionToken }).then(
    (view) => signedConsent(view.consentChallenge),
    () => '',
  );
let db: TestSchema;
let demo: RunningSimulator;
let app: INestMicroservice;
let replica: INestMicroservice;
let client: RpcClient;

beforeAll(async () => {
  nats = await startPrivateNats();
  keysDir = mkdtempSync(join(tmpdir(), 'broker-int-keys-'));
  nc = await connect({ servers: nats.url });
  people = SignedInPeople.answerOn(nc, clock);
  consents = ConsentChecks.answerOn(nc);
  await ensureStreams(nc, [streams.syncJobs, streams.syncEvents, streams.control, streams.deadLetters], logger);
  db = await createTestSchema({
    prefix: 'broker_connect',
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
    TOKEN_REFRESH_SKEW_SECONDS: '0',
    CONNECT_SESSION_TTL_SECONDS: String(TTL_SECONDS),
  });
  // The same module tree twice: two broker replicas sharing one database.
  const boot = (queue: string) => brokerUnderTest({ env, db, nc, clock, logger, queue });
  app = await boot('connection-broker');
  await app.listen();
  // The second replica is only used in-process (its services called directly), not subscribed.
  replica = await boot('connection-broker-replica');
  await replica.init();
  client = new RpcClient(nc);
}, 60_000);

afterAll(async () => {
  await replica?.close().catch(() => undefined);
  await app?.close().catch(() => undefined);
  await demo?.stop();
  await db?.drop().catch(() => undefined);
  await nats?.stop();
  rmSync(keysDir, { recursive: true, force: true });
});

async function newSession(applicationId = APP_A, scopes = ['demo:read:notes']) {
  return client.request(rpc.broker.createConnectSession, {
    orgId: ORG,
    applicationId,
    applicationName: applicationId === APP_A ? 'App A' : 'App B',
    integration: 'demo',
    scopes,
    callbackUrl: CALLBACK,
    appState: `st-${applicationId.slice(0, 4)}`,
  });
}

/** Consent + the source's login form, as the browser would: returns the source's redirect and the state cookie the gateway set. */
async function allowAndAuthorize(token: string, user = ALICE, login = 'alice') {
  const decided = await client.request(rpc.broker.decideConnectSession, {
    sessionToken: token,
    decision: ConnectDecision.ALLOW,
    personSessionToken: signedIn(user),
    consentAssertionJson: await consentOf(token, signedIn(user)),
  });
  expect(new URL(decided.redirectUrl).origin).toBe(new URL(demo.url).origin);
  expect(new URL(decided.redirectUrl).searchParams.get('code_challenge_method')).toBe('S256');
  const { redirect } = await completeAuthorization(decided.redirectUrl, { login });
  return { redirect, stateCookie: decided.oauthState };
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as AppError).code;
  }
  throw new Error('expected a rejection');
}

async function count(table: string): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0].n as number;
}

async function readStream(subject: string): Promise<Uint8Array[]> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const name = `t${randomUUID().slice(0, 8)}`;
  const stream = subject.startsWith('sync.') ? streams.syncJobs.name : streams.control.name;
  await jsm.consumers.add(stream, {
    name,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
  });
  const consumer = await js.consumers.get(stream, name);
  const out: Uint8Array[] = [];
  const batch = await consumer.fetch({ max_messages: 100, expires: 1000 });
  for await (const m of batch) out.push(m.data);
  return out;
}

describe('connect flow at the broker', () => {
  let connectionId = '';

  it("consent → source login with PKCE → callback stores an encrypted connection and the app's grant, then redirects to the exact callback", async () => {
    const session = await newSession();
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken);
    expect(redirect.href.startsWith(REDIRECT)).toBe(true);
    expect(redirect.searchParams.get('iss')).toBe(demo.url);

    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(ALICE),
    });
    const back = new URL(done.redirectUrl);
    expect(`${back.origin}${back.pathname}`).toBe(CALLBACK);
    expect(back.searchParams.get('connectionId')).toBe(done.connectionId);
    expect(back.searchParams.get('state')).toBe(`st-${APP_A.slice(0, 4)}`);
    connectionId = done.connectionId;

    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_A,
      connectionId,
    });
    expect(connection).toMatchObject({
      id: connectionId,
      integration: 'demo',
      status: ConnectionStatus.ACTIVE,
      scopes: ['demo:read:notes'],
    });

    // The token works at the source, and is nowhere in the database in clear.
    const token = await client.request(rpc.broker.getAccessToken, { connectionId });
    expect(token.accessToken).toMatch(/^demo_at_/);
    const profile = await fetch(`${token.apiBaseUrl}/items`, {
      headers: { authorization: `Bearer ${token.accessToken}` },
    });
    expect(profile.status).toBe(200);
    const dump = await db.pool.query(
      `SELECT row_to_json(c)::text AS j, encode(credential_ciphertext, 'escape') AS raw FROM connections c`,
    );
    for (const row of dump.rows) {
      expect(row.j).not.toContain(token.accessToken);
      expect(row.raw).not.toContain(token.accessToken);
    }

    // What must follow: the grant on CONTROL, the first sync on SYNC_JOBS.
    const grants = (await readStream('control.v1.grant_changed'))
      .map((d) => fromBinary(GrantChangedSchema, d))
      .filter((g) => g.connectionId === connectionId);
    expect(grants).toEqual([
      expect.objectContaining({
        applicationId: APP_A,
        userId: ALICE,
        status: GrantStatus.ACTIVE,
        scopes: ['demo:read:notes'],
        integration: 'demo',
      }),
    ]);
    const jobs = (await readStream('sync.v1.jobs.requested'))
      .map((d) => fromBinary(SyncJobSchema, d))
      .filter((j) => j.connectionId === connectionId);
    expect(jobs).toEqual([expect.objectContaining({ reason: SyncReason.INITIAL })]);
  });

  it('refuses to start with a fresh keyring while credentials the missing one sealed are stored', async () => {
    const connections = app.get(ConnectionsRepository);
    expect(await connections.countSealedCredentials()).toBeGreaterThan(0); // the connection made above
    const env = loadEnv({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      MASTER_KEY_FILE: join(keysDir, 'elsewhere', 'master.key'),
    });
    await expect(CredentialVault.open(env, () => connections.countSealedCredentials())).rejects.toMatchObject({
      code: 'key_file_missing',
    });
    expect(existsSync(join(keysDir, 'elsewhere', 'connection-broker.keyring'))).toBe(false);
  });

  it('refuses, before any source login, to connect the same account through a second organization', async () => {
    const elsewhere = await client.request(rpc.broker.createConnectSession, {
      orgId: randomUUID(),
      applicationId: randomUUID(),
      applicationName: 'Elsewhere',
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: CALLBACK,
      appState: 'x',
    });
    // Without this check the answer would be a redirect to the source's login page. The
    // person is told why (refused), and the app gets error=conflict with its state.
    const refused = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: elsewhere.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(ALICE),
      consentAssertionJson: await consentOf(elsewhere.sessionToken, signedIn(ALICE)),
    });
    expect(refused.refused).toBe('conflict');
    expect(refused.connectionId).toBe('');
    expect(refused.oauthState).toBe('');
    const back = new URL(refused.redirectUrl);
    expect(`${back.origin}${back.pathname}`).toBe(CALLBACK);
    expect(Object.fromEntries(back.searchParams)).toEqual({ error: 'conflict', state: 'x' });
    // The session is spent: allowing it again is refused.
    expect(
      await rejection(
        client.request(rpc.broker.decideConnectSession, {
          sessionToken: elsewhere.sessionToken,
          decision: ConnectDecision.ALLOW,
          personSessionToken: signedIn(ALICE),
          consentAssertionJson: await consentOf(elsewhere.sessionToken, signedIn(ALICE)),
        }),
      ),
    ).toBe('connect_session_invalid');
  });

  it('answers connection_not_found to an app without a grant, and for ids that are not even UUIDs', async () => {
    expect(
      await rejection(client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP_B, connectionId })),
    ).toBe('connection_not_found');
    expect(
      await rejection(
        client.request(rpc.broker.getConnection, { orgId: randomUUID(), applicationId: APP_A, connectionId }),
      ),
    ).toBe('connection_not_found');
    expect(
      await rejection(
        client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP_A, connectionId: 'nope' }),
      ),
    ).toBe('connection_not_found');
  });

  it('a second app reuses the connection without a second source login and gets its own grant', async () => {
    const before = (await demo.control.counters()).codesIssued;
    const session = await newSession(APP_B);
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: signedIn(ALICE),
    });
    expect(view.reusesConnection).toBe(true);
    const decided = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(ALICE),
      consentAssertionJson: await consentOf(session.sessionToken, signedIn(ALICE)),
    });
    expect(decided.connectionId).toBe(connectionId);
    expect(new URL(decided.redirectUrl).searchParams.get('connectionId')).toBe(connectionId);
    expect((await demo.control.counters()).codesIssued).toBe(before);
    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_B,
      connectionId,
    });
    expect(connection?.scopes).toEqual(['demo:read:notes']);
  });

  it('acts only for the person whose session the call carries: none, a forged or a signed-out one is refused and changes nothing', async () => {
    // Alice holds APP_A's and APP_B's grants on `connectionId` (tests above). Grace is signed in, then signs out.
    const grace = randomUUID();
    const graceToken = signedIn(grace);
    people.signOut(grace);
    const session = await newSession(APP_B);
    const allow = async (personSessionToken: string) =>
      client.request(rpc.broker.decideConnectSession, {
        sessionToken: session.sessionToken,
        decision: ConnectDecision.ALLOW,
        personSessionToken,
        consentAssertionJson: await consentOf(session.sessionToken, personSessionToken),
      });
    expect(await rejection(allow(''))).toBe('validation_failed');
    expect(await rejection(allow(`cg_ss_${'x'.repeat(43)}`))).toBe('unauthenticated');
    expect(await rejection(allow(graceToken))).toBe('unauthenticated');
    // A session that no longer resolves is no person on the consent page: nothing to reuse.
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: graceToken,
    });
    expect(view.reusesConnection).toBe(false);

    const grants = await count('grants');
    for (const call of [
      client.request(rpc.broker.listUserConnections, { personSessionToken: graceToken }),
      client.request(rpc.broker.removeConnection, { connectionId, personSessionToken: graceToken }),
      client.request(rpc.broker.revokeGrant, { connectionId, applicationId: APP_B, personSessionToken: graceToken }),
    ])
      expect(await rejection(call)).toBe('unauthenticated');
    // Naming Alice is not possible any more: the person path takes a session, the application path an org.
    expect(
      await rejection(
        client.request(rpc.broker.revokeGrant, {
          connectionId,
          applicationId: APP_B,
          personSessionToken: signedIn(ALICE),
          orgId: ORG,
        }),
      ),
    ).toBe('validation_failed');
    expect(await count('grants')).toBe(grants);
    const { connections } = await client.request(rpc.broker.listUserConnections, {
      personSessionToken: signedIn(ALICE),
    });
    expect(connections.map((c) => c.connection?.id)).toEqual([connectionId]);
    expect(connections[0]?.grants.every((g) => g.active)).toBe(true);
    // The connect session was left pending: the signed-in person can still decide.
    expect((await allow(signedIn(ALICE))).connectionId).toBe(connectionId);
  });

  it('a link made for one person is theirs alone: anyone else is refused, allowing or denying, and the link stays usable', async () => {
    const stranger = randomUUID();
    const create = (forUserId: string) =>
      client.request(rpc.broker.createConnectSession, {
        orgId: ORG,
        applicationId: APP_B,
        applicationName: 'App B',
        integration: 'demo',
        scopes: ['demo:read:notes'],
        callbackUrl: CALLBACK,
        appState: 'for-alice',
        forUserId,
      });
    expect(await rejection(create('alice'))).toBe('validation_failed');
    const session = await create(ALICE);
    const decide = async (decision: ConnectDecision, personSessionToken: string) =>
      client.request(rpc.broker.decideConnectSession, {
        sessionToken: session.sessionToken,
        decision,
        personSessionToken,
        consentAssertionJson:
          decision === ConnectDecision.ALLOW && personSessionToken
            ? await consentOf(session.sessionToken, personSessionToken)
            : '',
      });
    const grants = await count('grants');
    expect(await rejection(decide(ConnectDecision.ALLOW, signedIn(stranger)))).toBe('connect_session_other_person');
    expect(await rejection(decide(ConnectDecision.DENY, signedIn(stranger)))).toBe('connect_session_other_person');
    expect(await rejection(decide(ConnectDecision.DENY, ''))).toBe('connect_session_other_person');
    expect(await count('grants')).toBe(grants);
    // Still pending: the person it was made for consents (reusing her connection for App B).
    const allowed = await decide(ConnectDecision.ALLOW, signedIn(ALICE));
    expect(allowed.connectionId).toBe(connectionId);
    expect(new URL(allowed.redirectUrl).searchParams.get('state')).toBe('for-alice');
  });

  it("finds the person's connection an app holds a grant on (credential-only and gateway mode), and nothing for anyone else", async () => {
    const find = (over: Partial<{ orgId: string; applicationId: string; userId: string; integration: string }>) =>
      client.request(rpc.broker.findUserGrant, {
        orgId: ORG,
        applicationId: APP_A,
        userId: ALICE,
        integration: 'demo',
        ...over,
      });
    expect(await find({})).toMatchObject({
      connectionId,
      scopes: ['demo:read:notes'],
      status: ConnectionStatus.ACTIVE,
    });
    expect(await find({ applicationId: APP_B })).toMatchObject({ connectionId });
    // Another app, another org, another person, another integration: nothing to use, nothing revealed.
    for (const over of [
      { applicationId: randomUUID() },
      { orgId: randomUUID() },
      { userId: randomUUID() },
      { integration: 'github' },
    ])
      expect(await find(over)).toMatchObject({ connectionId: '', scopes: [], status: ConnectionStatus.UNSPECIFIED });
    expect(await rejection(find({ userId: 'alice' }))).toBe('validation_failed');
  });

  it('an app needing more source scopes sends the person to the source once more, asking for the old scopes too', async () => {
    // App B now asks for the profile only; the stored token carries notes.read (App A's).
    const session = await newSession(APP_B, ['demo:read:profile']);
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: signedIn(ALICE),
    });
    expect(view.reusesConnection).toBe(false);
    const decided = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(ALICE),
      consentAssertionJson: await consentOf(session.sessionToken, signedIn(ALICE)),
    });
    expect(new URL(decided.redirectUrl).searchParams.get('scope')?.split(' ').sort()).toEqual([
      'notes.read',
      'profile',
    ]);
    const { redirect } = await completeAuthorization(decided.redirectUrl, { login: 'alice' });
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie: decided.oauthState,
      personSessionToken: signedIn(ALICE),
    });
    expect(done.connectionId).toBe(connectionId);
    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_B,
      connectionId,
    });
    expect(connection?.scopes).toEqual(['demo:read:profile']);
    // App A's grant is untouched, and the re-authorized token still serves it.
    expect(
      (await client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP_A, connectionId })).connection
        ?.scopes,
    ).toEqual(['demo:read:notes']);
    const token = await client.request(rpc.broker.getAccessToken, { connectionId });
    expect(token.sourceScopes).toEqual(['notes.read', 'profile']);
    expect(
      (await fetch(`${token.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${token.accessToken}` } })).status,
    ).toBe(200);
  });

  it('refuses a replayed callback, a forged state and a state from another browser, storing nothing', async () => {
    const session = await newSession();
    const bob = randomUUID();
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken, bob, 'bob');
    const connections = await count('connections');

    // Another browser (no / another state cookie): refused, and the session is burnt.
    expect(
      await rejection(
        client.request(rpc.broker.completeAuthorization, {
          callbackQuery: redirect.search.slice(1),
          stateCookie: 'x'.repeat(43),
          personSessionToken: signedIn(bob),
        }),
      ),
    ).toBe('oauth_state_invalid');
    // The same callback again, now with the right cookie: the state is spent.
    expect(
      await rejection(
        client.request(rpc.broker.completeAuthorization, {
          callbackQuery: redirect.search.slice(1),
          stateCookie,
          personSessionToken: signedIn(bob),
        }),
      ),
    ).toBe('oauth_state_invalid');
    // A state nobody issued.
    expect(
      await rejection(
        client.request(rpc.broker.completeAuthorization, {
          callbackQuery: 'code=abc&state=forged',
          stateCookie: 'forged',
          personSessionToken: signedIn(bob),
        }),
      ),
    ).toBe('oauth_state_invalid');
    expect(await count('connections')).toBe(connections);
  });

  it('deny redirects with access_denied and the state; the link is then spent', async () => {
    const session = await newSession();
    const denied = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.DENY,
    });
    const back = new URL(denied.redirectUrl);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe(`st-${APP_A.slice(0, 4)}`);
    expect(back.searchParams.get('connectionId')).toBeNull();
    expect(
      await rejection(
        client.request(rpc.broker.getConnectSession, { sessionToken: session.sessionToken, personSessionToken: '' }),
      ),
    ).toBe('connect_session_invalid');
  });

  it('a source that refuses (the person denies at the source) redirects with access_denied', async () => {
    const session = await newSession();
    const carol = randomUUID();
    const decided = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(carol),
      consentAssertionJson: await consentOf(session.sessionToken, signedIn(carol)),
    });
    const { redirect } = await completeAuthorization(decided.redirectUrl, { login: 'bob', decision: 'deny' });
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie: decided.oauthState,
      personSessionToken: signedIn(carol),
    });
    expect(new URL(done.redirectUrl).searchParams.get('error')).toBe('access_denied');
    expect(done.connectionId).toBe('');
  });

  it('an expired connect session can no longer be shown or allowed', async () => {
    const session = await newSession();
    clock.advance(TTL_SECONDS * 1000);

    expect(
      await rejection(
        client.request(rpc.broker.getConnectSession, { sessionToken: session.sessionToken, personSessionToken: '' }),
      ),
    ).toBe('connect_session_expired');
    expect(
      await rejection(
        client.request(rpc.broker.decideConnectSession, {
          sessionToken: session.sessionToken,
          decision: ConnectDecision.ALLOW,
          personSessionToken: signedIn(ALICE),
          consentAssertionJson: await consentOf(session.sessionToken, signedIn(ALICE)),
        }),
      ),
    ).toBe('connect_session_expired');
  });

  it('refuses scopes of another integration and integrations without a configured client', async () => {
    expect(
      await rejection(
        client.request(rpc.broker.createConnectSession, {
          orgId: ORG,
          applicationId: APP_A,
          applicationName: 'A',
          integration: 'demo',
          scopes: ['github:read:repos'],
          callbackUrl: CALLBACK,
        }),
      ),
    ).toBe('scope_not_allowed');
    expect(
      await rejection(
        client.request(rpc.broker.createConnectSession, {
          orgId: ORG,
          applicationId: APP_A,
          applicationName: 'A',
          integration: 'github',
          scopes: ['github:read:repos'],
          callbackUrl: CALLBACK,
        }),
      ),
    ).toBe('integration_not_allowed');
  });

  it('refreshes once for many concurrent callers, keeps the rotated refresh token, and marks needs_reauth on invalid_grant', async () => {
    const before = await client.request(rpc.broker.getAccessToken, { connectionId });
    await demo.control.expireTokens(false);
    const refreshedBefore = (await demo.control.counters()).tokensRefreshed;
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: true })),
    );
    const tokens = new Set(results.map((r) => r.accessToken));
    expect((await demo.control.counters()).tokensRefreshed - refreshedBefore).toBe(1);
    expect(tokens.size).toBe(1);
    expect([...tokens][0]).not.toBe(before.accessToken);
    const works = await fetch(`${before.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${[...tokens][0]}` } });
    expect(works.status).toBe(200);

    // A second forced refresh must use the rotated refresh token (the simulator revokes reused ones).
    const again = await client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: true });
    expect(again.accessToken).not.toBe([...tokens][0]);

    await demo.control.expireTokens(true);
    expect(await rejection(client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: true }))).toBe(
      'connection_needs_reauth',
    );
    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_A,
      connectionId,
    });
    expect(connection?.status).toBe(ConnectionStatus.NEEDS_REAUTH);
    // Credential-only mode sends the person back through the connect flow.
    expect(
      await client.request(rpc.broker.findUserGrant, {
        orgId: ORG,
        applicationId: APP_A,
        userId: ALICE,
        integration: 'demo',
      }),
    ).toMatchObject({ connectionId: '', status: ConnectionStatus.NEEDS_REAUTH });
  });

  it('a token refused on two replicas is refreshed once, whenever each asks; a refusal of the new token refreshes again', async () => {
    const session = await newSession();
    const frank = randomUUID();
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken, frank, 'bob');
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(frank),
    });
    const used = await client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId });
    await demo.control.expireTokens(false);
    const before = (await demo.control.counters()).tokensRefreshed;
    // Both replicas saw the same token refused, at once and again after the first refresh
    // committed: what they refuse is that credential version, so one refresh serves all.
    const refused = used.credentialVersion;
    const [one, two] = await Promise.all([
      app.get(AccessTokensService).accessToken(done.connectionId, true, refused),
      replica.get(AccessTokensService).accessToken(done.connectionId, true, refused),
    ]);
    const late = await replica.get(AccessTokensService).accessToken(done.connectionId, true, refused);
    expect((await demo.control.counters()).tokensRefreshed - before).toBe(1);
    expect(one.credential.accessToken).not.toBe(used.accessToken);
    expect(two.credential.accessToken).toBe(one.credential.accessToken);
    expect(late.credential.accessToken).toBe(one.credential.accessToken);
    expect(late.connection.credentialVersion).toBe(refused + 1);
    const works = await fetch(`${used.apiBaseUrl}/items`, {
      headers: { authorization: `Bearer ${one.credential.accessToken}` },
    });
    expect(works.status).toBe(200);

    // Over NATS as the sync-worker asks; the new token refused in turn is a new refresh.
    const again = await client.request(rpc.broker.getAccessToken, {
      connectionId: done.connectionId,
      forceRefresh: true,
      refusedCredentialVersion: late.connection.credentialVersion,
    });
    expect((await demo.control.counters()).tokensRefreshed - before).toBe(2);
    expect(again.accessToken).not.toBe(one.credential.accessToken);
    expect(again.credentialVersion).toBe(refused + 2);
  });

  it('a NUL in any string of a request is validation_failed, not a database error', async () => {
    expect(
      await rejection(
        client.request(rpc.broker.createConnectSession, {
          orgId: ORG,
          applicationId: APP_A,
          applicationName: 'A\u0000',
          integration: 'demo',
          scopes: ['demo:read:notes'],
          callbackUrl: CALLBACK,
          appState: 'x\u0000',
        }),
      ),
    ).toBe('validation_failed');
  });

  it('a grant change whose publish never happened (crash after commit) still reaches CONTROL through the outbox sweep', async () => {
    const relay = app.get(GrantEventsRelay);
    const grantId = randomUUID();
    const connectionIdForEvent = randomUUID();
    // The grant's transaction committed with its event, and the process died before flush().
    const eventId = await app.get(GrantsRepository).transaction((tx) =>
      relay.record(
        tx,
        {
          id: grantId,
          orgId: ORG,
          applicationId: APP_A,
          userId: ALICE,
          connectionId: connectionIdForEvent,
          scopes: ['demo:read:notes'],
          status: 'revoked',
          revision: 3,
          createdAt: clock.date(),
          updatedAt: clock.date(),
          revokedAt: clock.date(),
        },
        'demo',
      ),
    );
    const published = async () =>
      (await db.pool.query('SELECT published_at FROM grant_events WHERE id = $1', [eventId])).rows[0]
        .published_at as Date | null;
    // Too young for the sweep: it could still be on its way from the commit that wrote it.
    await relay.sweep();
    expect(await published()).toBeNull();
    clock.advance(SWEEP_AFTER_MS + 1);
    // This replica's sweep publishes it, or the other replica's did first (SKIP LOCKED): give that one a moment to commit.
    await relay.sweep();
    for (let i = 0; i < 50 && !(await published()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await published()).not.toBeNull();
    const seen = (await readStream('control.v1.grant_changed'))
      .map((d) => fromBinary(GrantChangedSchema, d))
      .filter((g) => g.grantId === grantId);
    expect(seen).toEqual([
      expect.objectContaining({
        eventId,
        status: GrantStatus.REVOKED,
        revision: 3n,
        connectionId: connectionIdForEvent,
      }),
    ]);
  });

  it('an API-key integration stores the pasted key encrypted, without any source login', async () => {
    // The app has a webhook endpoint: it hears connection.created now, connection.needs_reauth below.
    const hook = await client.request(rpc.broker.configureWebhook, {
      orgId: ORG,
      applicationId: APP_A,
      url: 'https://hooks.app-a.example/cg',
    });
    expect(hook.endpoint?.url).toBe('https://hooks.app-a.example/cg');
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP_A,
      applicationName: 'App A',
      integration: 'demo-keys',
      scopes: ['demo-keys:read:notes'],
      callbackUrl: CALLBACK,
    });
    const dave = randomUUID();
    expect(
      await rejection(
        client.request(rpc.broker.decideConnectSession, {
          sessionToken: session.sessionToken,
          decision: ConnectDecision.ALLOW,
          personSessionToken: signedIn(dave),
          consentAssertionJson: await consentOf(session.sessionToken, signedIn(dave)),
          apiKey: 'short',
        }),
      ),
    ).toBe('validation_failed');
    const key = `dk_${randomUUID().replace(/-/g, '')}`;
    const done = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(dave),
      consentAssertionJson: await consentOf(session.sessionToken, signedIn(dave)),
      apiKey: key,
    });
    expect(done.connectionId).not.toBe('');
    const token = await client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId });
    expect(token.accessToken).toBe(key);
    const { rows } = await db.pool.query(
      `SELECT encode(credential_ciphertext, 'escape') AS raw FROM connections WHERE id = $1`,
      [done.connectionId],
    );
    expect(rows[0].raw).not.toContain(key);

    // The source refusing the stored key (a 401 at sync) cannot be mended by a refresh: the
    // connection needs the person again, and the broker says so with its code.
    expect(
      await rejection(
        client.request(rpc.broker.getAccessToken, {
          connectionId: done.connectionId,
          forceRefresh: true,
          refusedCredentialVersion: token.credentialVersion,
        }),
      ),
    ).toBe('connection_needs_reauth');
    const { rows: status } = await db.pool.query(`SELECT status FROM connections WHERE id = $1`, [done.connectionId]);
    expect(status[0].status).toBe('needs_reauth');
    // Queued in the same commits as the grant and the status change, in that order.
    const { rows: hooks } = await db.pool.query(
      `SELECT type, convert_from(payload, 'UTF8')::jsonb -> 'data' AS data FROM webhook_messages
       WHERE application_id = $1 AND connection_id = $2 ORDER BY seq`,
      [APP_A, done.connectionId],
    );
    expect(hooks.map((h: { type: string }) => h.type)).toEqual(['connection.created', 'connection.needs_reauth']);
    expect(hooks[1].data).toEqual({ connectionId: done.connectionId, integration: 'demo-keys' });

    // A sync outcome on SYNC_EVENTS becomes sync.failed for the apps holding a grant, once per
    // event however often the stream delivers it.
    const publisher = new JetStreamPublisher(nc);
    const outcome = {
      eventId: randomUUID(),
      connectionId: done.connectionId,
      integration: 'demo-keys',
      outcome: SyncRunOutcome.FAILED,
      errorCode: 'source_error',
      finishedAt: timestampFromDate(new Date()),
    };
    await publisher.publish(events.syncRunFinished, outcome);
    const failed = async () =>
      (
        await db.pool.query(
          `SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' AS data FROM webhook_messages
           WHERE application_id = $1 AND connection_id = $2 AND type = 'sync.failed'`,
          [APP_A, done.connectionId],
        )
      ).rows as { data: Record<string, unknown> }[];
    for (let i = 0; i < 100 && (await failed()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await failed()).toEqual([
      { data: expect.objectContaining({ connectionId: done.connectionId, errorCode: 'source_error' }) },
    ]);
  });

  it('a file-export integration (netflix) finishes with a connection and no source login, and hands out no token', async () => {
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP_A,
      applicationName: 'App A',
      integration: 'netflix',
      scopes: ['netflix:read:history'],
      callbackUrl: CALLBACK,
    });
    const shown = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: '',
    });
    expect(shown.authType).toBe('file_export');
    const frank = randomUUID();
    const done = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: signedIn(frank),
      consentAssertionJson: await consentOf(session.sessionToken, signedIn(frank)),
    });
    expect(done.connectionId).not.toBe('');
    expect(new URL(done.redirectUrl).searchParams.get('connectionId')).toBe(done.connectionId);
    const seen = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_A,
      connectionId: done.connectionId,
    });
    expect(seen.connection?.integration).toBe('netflix');
    const { rows } = await db.pool.query(
      `SELECT auth_type, data_key_id IS NOT NULL AS keyed FROM connections WHERE id = $1`,
      [done.connectionId],
    );
    expect(rows[0]).toEqual({ auth_type: 'file_export', keyed: true });
    expect(await rejection(client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId }))).toBe(
      'no_source_api',
    );
    // Deleting it works like any other connection (nothing to revoke at a source).
    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId: done.connectionId,
      personSessionToken: signedIn(frank),
    });
    expect(removed.revokedAtSource).toBe(false);
    expect(await rejection(client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId }))).toBe(
      'connection_not_found',
    );
  });

  it('deleting a connection revokes at the source, revokes every grant and destroys the key', async () => {
    const session = await newSession(APP_A);
    const erin = randomUUID();
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken, erin, 'bob');
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(erin),
    });
    const token = await client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId });
    const dataKeyId = (
      await db.pool.query<{ id: string }>(`SELECT data_key_id::text AS id FROM connections WHERE id = $1`, [
        done.connectionId,
      ])
    ).rows[0]?.id;
    expect(readdirSync(join(keysDir, 'keys', 'connection-broker-data-keys'))).toContain(`${dataKeyId}.key`);

    expect(
      await rejection(
        client.request(rpc.broker.removeConnection, {
          connectionId: done.connectionId,
          personSessionToken: signedIn(randomUUID()),
        }),
      ),
    ).toBe('connection_not_found');
    const removed = await client.request(rpc.broker.removeConnection, {
      connectionId: done.connectionId,
      personSessionToken: signedIn(erin),
    });
    expect(removed.revokedAtSource).toBe(true);
    const after = await fetch(`${token.apiBaseUrl}/items`, {
      headers: { authorization: `Bearer ${token.accessToken}` },
    });
    expect(after.status).toBe(401);
    const { rows } = await db.pool.query(
      `SELECT data_key_id, wrapped_data_key, credential_ciphertext, status FROM connections WHERE id = $1`,
      [done.connectionId],
    );
    expect(rows[0]).toEqual({
      data_key_id: null,
      wrapped_data_key: null,
      credential_ciphertext: null,
      status: 'revoked',
    });
    // The key file itself is gone from the key store outside the database.
    expect(readdirSync(join(keysDir, 'keys', 'connection-broker-data-keys'))).not.toContain(`${dataKeyId}.key`);
    expect(
      await rejection(
        client.request(rpc.broker.getConnection, { orgId: ORG, applicationId: APP_A, connectionId: done.connectionId }),
      ),
    ).toBe('connection_not_found');
    expect(await rejection(client.request(rpc.broker.getAccessToken, { connectionId: done.connectionId }))).toBe(
      'connection_not_found',
    );
  });
});

describe("the person's signed consent", () => {
  it('is required to allow: none, or one over other terms, is refused and the session stays usable; the checked proof registers the grant', async () => {
    const person = randomUUID();
    const session = await newSession(APP_A, ['demo:read:notes']);
    const other = await newSession(APP_B, ['demo:read:notes']);
    const allow = (consentAssertionJson: string) =>
      client.request(rpc.broker.decideConnectSession, {
        sessionToken: session.sessionToken,
        decision: ConnectDecision.ALLOW,
        personSessionToken: signedIn(person),
        consentAssertionJson,
      });
    const grants = await count('grants');
    expect(await rejection(allow(''))).toBe('passkey_signature_invalid');
    // Signed for another application's session: other terms, other nonce.
    expect(await rejection(allow(await consentOf(other.sessionToken, signedIn(person))))).toBe(
      'passkey_signature_invalid',
    );
    // Signed by someone else (the challenge names its person).
    expect(await rejection(allow(await consentOf(session.sessionToken, signedIn(ALICE))))).toBe(
      'passkey_signature_invalid',
    );
    expect(await count('grants')).toBe(grants);

    // The person's own signature: on to the source, and the grant is registered with that very proof.
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken, person, 'bob');
    const checked = consents.accepted.at(-1);
    expect(checked).toMatchObject({ userId: person, applicationId: APP_A, scopes: ['demo:read:notes'] });
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(person),
    });
    await waitForRegistration(done.grantId);
    const registered = consents.registered.find((r) => r.grant?.grantId === done.grantId);
    expect(registered?.grant).toMatchObject({ userId: person, connectionId: done.connectionId });
    expect(registered?.consent?.assertionJson).toBe(checked?.consent?.assertionJson);
    expect(registered?.consent?.nonce).toBe(checked?.consent?.nonce);
  });
});

describe('a re-consent with fewer scopes', () => {
  it('never leaves the shard answering the earlier, wider grant: revoked there when the registration fails, else the call fails', async () => {
    const person = randomUUID();
    const allow = async (scopes: string[]) => {
      const session = await newSession(APP_A, scopes);
      return client.request(rpc.broker.decideConnectSession, {
        sessionToken: session.sessionToken,
        decision: ConnectDecision.ALLOW,
        personSessionToken: signedIn(person),
        consentAssertionJson: await consentOf(session.sessionToken, signedIn(person)),
      });
    };
    const wide = ['demo:read:notes', 'demo:read:profile'];
    const first = await newSession(APP_A, wide);
    const { redirect, stateCookie } = await allowAndAuthorize(first.sessionToken, person, 'bob');
    const { connectionId } = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(person),
    });
    expect(consents.answering(connectionId, APP_A)?.scopes).toEqual(wide);

    try {
      // The shard fails the narrower registration but confirms revoking: the call succeeds and
      // the earlier, wider grant answers no more (the app's queries fail until a new consent).
      consents.failing.add('register_grant');
      expect((await allow(['demo:read:notes'])).connectionId).toBe(connectionId);
      expect(consents.answering(connectionId, APP_A)).toBeUndefined();

      consents.failing.clear();
      expect((await allow(wide)).connectionId).toBe(connectionId);
      expect(consents.answering(connectionId, APP_A)?.scopes).toEqual(wide);
      // Neither confirmed: the person hears the failure, never a success over the wider grant.
      consents.failing.add('register_grant').add('revoke_grant');
      expect(await rejection(allow(['demo:read:notes']))).toBe('service_unavailable');
    } finally {
      consents.failing.clear();
    }
    // The shard answering again: the narrower consent registers as it always did.
    expect((await allow(['demo:read:notes'])).connectionId).toBe(connectionId);
    expect(consents.answering(connectionId, APP_A)?.scopes).toEqual(['demo:read:notes']);
    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: ORG,
      applicationId: APP_A,
      connectionId,
    });
    expect(connection?.scopes).toEqual(['demo:read:notes']);
  });
});

async function waitForRegistration(grantId: string): Promise<void> {
  for (let i = 0; i < 100 && !consents.registered.some((r) => r.grant?.grantId === grantId); i++)
    await new Promise((resolve) => setTimeout(resolve, 20));
}

describe("the person's reconnect (the portal)", () => {
  it('signs in to the source again for their own connection: credential renewed, status active, no grant changed', async () => {
    const person = randomUUID();
    const session = await newSession(APP_A, ['demo:read:notes']);
    const { redirect, stateCookie } = await allowAndAuthorize(session.sessionToken, person, 'bob');
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: redirect.search.slice(1),
      stateCookie,
      personSessionToken: signedIn(person),
    });
    const connectionId = done.connectionId;
    // The source stopped accepting the connection's refresh token (as a sync would find it).
    await db.pool.query(`UPDATE connections SET status = 'needs_reauth' WHERE id = $1`, [connectionId]);
    const grants = await count('grants');
    const sessions = await count('connect_sessions');

    // Only the person's own connection, with a recent passkey use.
    expect(
      await rejection(client.request(rpc.broker.startReconnect, { personSessionToken: signedIn(ALICE), connectionId })),
    ).toBe('connection_not_found');
    people.passkeyUsedAgo(person, 6 * 60_000);
    expect(
      await rejection(
        client.request(rpc.broker.startReconnect, { personSessionToken: signedIn(person), connectionId }),
      ),
    ).toBe('reauthentication_required');
    people.passkeyUsedAgo(person, 0);
    expect(await count('connect_sessions')).toBe(sessions);

    const started = await client.request(rpc.broker.startReconnect, {
      personSessionToken: signedIn(person),
      connectionId,
    });
    const source = new URL(started.redirectUrl);
    expect(source.origin).toBe(new URL(demo.url).origin);
    // The sources' scopes the connection carries, no more.
    expect(source.searchParams.get('scope')).toBe('notes.read');
    const back = await completeAuthorization(started.redirectUrl, { login: 'bob' });
    const reconnected = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: back.redirect.search.slice(1),
      stateCookie: started.oauthState,
      personSessionToken: signedIn(person),
    });
    expect(reconnected.connectionId).toBe(connectionId);
    expect(reconnected.grantId).toBe('');
    expect(reconnected.redirectUrl).toBe(`${GATEWAY}/account/reconnected?connectionId=${connectionId}`);
    const { rows } = await db.pool.query<{ status: string }>('SELECT status FROM connections WHERE id = $1', [
      connectionId,
    ]);
    expect(rows).toEqual([{ status: 'active' }]);
    expect(await count('grants')).toBe(grants);
    // Spent: the same callback again is refused.
    expect(
      await rejection(
        client.request(rpc.broker.completeAuthorization, {
          callbackQuery: back.redirect.search.slice(1),
          stateCookie: started.oauthState,
          personSessionToken: signedIn(person),
        }),
      ),
    ).toBe('oauth_state_invalid');

    // A connection deleted while its reconnect was at the source is not brought back.
    const again = await client.request(rpc.broker.startReconnect, {
      personSessionToken: signedIn(person),
      connectionId,
    });
    const signedInAgain = await completeAuthorization(again.redirectUrl, { login: 'bob' });
    await db.pool.query('UPDATE connections SET deleted_at = now() WHERE id = $1', [connectionId]);
    const refused = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: signedInAgain.redirect.search.slice(1),
      stateCookie: again.oauthState,
      personSessionToken: signedIn(person),
    });
    expect(refused.redirectUrl).toBe(`${GATEWAY}/account/reconnected?error=conflict`);
    expect(refused.connectionId).toBe('');
    const after = await db.pool.query<{ deleted: boolean }>(
      'SELECT deleted_at IS NOT NULL AS deleted FROM connections WHERE id = $1',
      [connectionId],
    );
    expect(after.rows).toEqual([{ deleted: true }]);
  });
});
