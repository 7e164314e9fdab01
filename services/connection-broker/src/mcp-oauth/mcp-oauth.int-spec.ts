import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { authorizeAtOAuthMcp, type RunningOAuthMcp, startOAuthMcp } from '@context-gateway/mcp-upstreams';
import { ensureStreams, RpcClient } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { ConnectDecision, rpc, streams } from '@context-gateway/proto';
import type { OutboundPolicy } from '@context-gateway/service-kit';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestMicroservice } from '@nestjs/common';

import { loadEnv } from '../env.js';
import { ConsentChecks, signedConsent } from '../grants/testing/consent-checks.js';
import { SignedInPeople } from '../people/testing/signed-in-people.js';
import { brokerUnderTest } from '../testing/broker-under-test.js';
import { discoverMcpAuthorization, guardedFetch } from './mcp-oauth-discovery.js';

// A remote MCP server protected by its own authorization server (tools/mcp-upstreams
// oauth-mcp: oidc-provider with resource indicators, dynamic registration, JWT access tokens
// whose audience is the server), met as the MCP authorization spec has a client meet it:
// discovery through the outbound guard, then the broker's connect flow with the server's own
// OAuth, token access and refresh with `resource`. The broker runs on a private nats-server
// with a throw-away Postgres schema; the person's side of the Personal Server is answered by
// the grants/testing checks.
const GATEWAY = 'http://gateway.test';
/** Each registration's own redirect URI: `<gateway>/v1/connect/mcp/callback/<its key>`. */
const OWN_REDIRECT = /^http:\/\/gateway\.test\/v1\/connect\/mcp\/callback\/([A-Za-z0-9_-]{22})$/;
/** The registration key a redirect URI names (what the gateway passes on from the path). */
const keyOf = (redirectUri: string) => OWN_REDIRECT.exec(redirectUri)?.[1] ?? '';
const ORG = randomUUID();
const APP = randomUUID();
const ALICE = randomUUID();
const dev: OutboundPolicy = { allowHttp: true, allowPrivateNetworks: true };
const logger = createLogger({ service: 'connection-broker-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const clock = new TestClock();

let nats: PrivateNats;
let nc: NatsConnection;
let db: TestSchema;
let keysDir: string;
let app: INestMicroservice;
let client: RpcClient;
let people: SignedInPeople;
let notes: RunningOAuthMcp;
let closed: RunningOAuthMcp;
const fakes: Server[] = [];

beforeAll(async () => {
  notes = await startOAuthMcp();
  closed = await startOAuthMcp({ noRegistration: true });
  nats = await startPrivateNats();
  keysDir = mkdtempSync(join(tmpdir(), 'broker-mcp-oauth-keys-'));
  nc = await connect({ servers: nats.url });
  people = SignedInPeople.answerOn(nc, clock);
  ConsentChecks.answerOn(nc);
  await ensureStreams(nc, [streams.syncJobs, streams.syncEvents, streams.control, streams.deadLetters], logger);
  db = await createTestSchema({
    prefix: 'broker_mcp_oauth',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  const env = loadEnv({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    GATEWAY_PUBLIC_URL: GATEWAY,
    MASTER_KEY_FILE: join(keysDir, 'keys', 'master.key'),
    MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
    MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
    TOKEN_REFRESH_SKEW_SECONDS: '60',
  });
  app = await brokerUnderTest({ env, db, nc, clock, logger, queue: 'connection-broker' });
  await app.listen();
  client = new RpcClient(nc);
}, 60_000);

afterAll(async () => {
  await app?.close().catch(() => undefined);
  await db?.drop().catch(() => undefined);
  await nats?.stop();
  await notes?.stop();
  await closed?.stop();
  for (const server of fakes) server.closeAllConnections();
  await Promise.all(fakes.map((s) => new Promise((resolve) => s.close(resolve))));
  rmSync(keysDir, { recursive: true, force: true });
});

/** A hand-made server answering `routes` (path → status and JSON body, or a 401 challenge). */
async function fake(
  routes: (origin: string) => Record<string, { status: number; body?: unknown; challenge?: string }>,
) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fakes.push(server);
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const table = routes(origin);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const route = table[(req.url ?? '/').split('?')[0] ?? '/'];
    if (!route) return void res.writeHead(404).end();
    res.writeHead(route.status, {
      'content-type': 'application/json',
      ...(route.challenge ? { 'www-authenticate': route.challenge } : {}),
    });
    res.end(route.body === undefined ? '' : JSON.stringify(route.body));
  });
  return origin;
}

/** The real notes authorization server's metadata, served under another origin's issuer (what a mix-up looks like). */
async function notesMetadata(): Promise<Record<string, unknown>> {
  return (await (await fetch(`${notes.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
}

const discover = (url: string, policy = dev) =>
  discoverMcpAuthorization(url, guardedFetch(policy, 5_000).fetch, policy);

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    return AppError.from(error);
  }
  throw new Error('expected a rejection');
}

describe('discovery (RFC 9728, RFC 8414 / OIDC)', () => {
  it("follows the 401 challenge's resource_metadata to the server's own authorization server", async () => {
    const found = await discover(notes.url);
    expect(found).toMatchObject({
      resource: notes.url,
      resourceMetadataUrl: `${new URL(notes.url).origin}/.well-known/oauth-protected-resource/mcp`,
      scopes: ['notes:read', 'notes:write'],
      resourceName: 'Notes (test)',
    });
    expect(found.authorizationServer.issuer).toBe(notes.issuer);
    expect(found.authorizationServer.code_challenge_methods_supported).toContain('S256');
  });

  it('without resource_metadata in the challenge, reads the path-aware well-known URL, then the root one', async () => {
    const metadata = await notesMetadata();
    const prm = (origin: string) => ({ resource: `${origin}/v2/mcp`, authorization_servers: [notes.issuer] });
    const pathAware = await fake((origin) => ({
      '/v2/mcp': { status: 401, challenge: 'Bearer error="invalid_token"' },
      '/.well-known/oauth-protected-resource/v2/mcp': { status: 200, body: prm(origin) },
    }));
    expect(await discover(`${pathAware}/v2/mcp`)).toMatchObject({
      resource: `${pathAware}/v2/mcp`,
      resourceMetadataUrl: `${pathAware}/.well-known/oauth-protected-resource/v2/mcp`,
      scopes: [],
    });
    const root = await fake((origin) => ({
      '/v2/mcp': { status: 401 },
      // The origin as the resource: a prefix of the server's URL on its origin is accepted.
      '/.well-known/oauth-protected-resource': {
        status: 200,
        body: { ...prm(origin), resource: origin, scopes_supported: ['notes:read'] },
      },
    }));
    const found = await discover(`${root}/v2/mcp`);
    expect(found).toMatchObject({ resource: root, scopes: ['notes:read'] });
    expect(found.authorizationServer.token_endpoint).toBe(metadata['token_endpoint']);
  });

  it('refuses an authorization server whose metadata names another issuer', async () => {
    const metadata = await notesMetadata();
    const as = await fake(() => ({
      // Served under this origin, but naming the notes issuer: a mix-up.
      '/.well-known/oauth-authorization-server': { status: 200, body: metadata },
    }));
    const server = await fake((origin) => ({
      '/mcp': {
        status: 401,
        challenge: `Bearer resource_metadata="${origin}/prm"`,
      },
      '/prm': { status: 200, body: { resource: `${origin}/mcp`, authorization_servers: [as] } },
    }));
    const error = await rejection(discover(`${server}/mcp`));
    expect(error.code).toBe('upstream_auth_issuer_mismatch');
  });

  it('refuses metadata for another resource, an authorization server without PKCE S256, and none at all', async () => {
    const metadata = await notesMetadata();
    const noPkce = await fake((origin) => ({
      '/.well-known/oauth-authorization-server': {
        status: 200,
        body: { ...metadata, issuer: origin, code_challenge_methods_supported: ['plain'] },
      },
    }));
    const server = await fake((origin) => ({
      '/other/mcp': { status: 401, challenge: `Bearer resource_metadata="${origin}/prm-other"` },
      '/prm-other': { status: 200, body: { resource: `${origin}/mcp`, authorization_servers: [notes.issuer] } },
      '/weak/mcp': { status: 401, challenge: `Bearer resource_metadata="${origin}/prm-weak"` },
      '/prm-weak': { status: 200, body: { resource: `${origin}/weak/mcp`, authorization_servers: [noPkce] } },
      '/bare/mcp': { status: 401 },
    }));
    for (const [path, message] of [
      ['/other/mcp', /another resource/],
      ['/weak/mcp', /PKCE/],
      ['/bare/mcp', /no protected resource metadata/],
    ] as const) {
      const error = await rejection(discover(`${server}${path}`));
      expect(error.code).toBe('upstream_auth_discovery_failed');
      expect(error.message).toMatch(message);
    }
  });

  it('refuses http:// and private addresses unless the development switches allow them', async () => {
    const notHttps = await rejection(discover(notes.url, { allowHttp: false, allowPrivateNetworks: true }));
    expect(notHttps.code).toBe('validation_failed');
    expect(notHttps.message).toMatch(/https/);
    // A name resolving to loopback: refused when the socket connects (no DNS rebinding around it).
    // Every URL discovery finds (metadata, issuer, endpoints) goes through the same guard.
    const local = notes.url.replace('127.0.0.1', 'localhost');
    const privateRefused = await rejection(discover(local, { allowHttp: true, allowPrivateNetworks: false }));
    expect(privateRefused.code).toBe('upstream_auth_discovery_failed');
  });
});

describe('registration and the connect flow with the server’s own OAuth', () => {
  let connectionId = '';
  let firstToken = '';
  /** The notes registration's own redirect URI (as its authorization server knows it). */
  let notesRedirect = '';
  const claims = (jwt: string) =>
    JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

  it('registers by dynamic registration; a pre-registered client is kept sealed and never answered; a catalog key is refused', async () => {
    const { server } = await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes',
      url: notes.url,
    });
    expect(server).toMatchObject({
      integration: 'notes',
      resource: notes.url,
      issuer: notes.issuer,
      clientSource: 'dynamic_registration',
      scopes: ['notes:read', 'notes:write'],
      redirectUri: expect.stringMatching(OWN_REDIRECT),
    });
    notesRedirect = server?.redirectUri ?? '';

    const secret = `pre-registered-secret-${randomUUID()}`;
    const pre = await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-pre',
      url: closed.url,
      clientId: 'operator-client',
      clientSecret: secret,
    });
    expect(pre.server?.clientSource).toBe('pre_registered');
    // The operator is told which redirect URI to register their client with: its own.
    expect(pre.server?.redirectUri).toMatch(OWN_REDIRECT);
    expect(pre.server?.redirectUri).not.toBe(notesRedirect);
    const stored = async (integration: string) =>
      (
        await db.pool.query(
          `SELECT client_id AS "clientId", client_secret_sealed IS NOT NULL AS sealed, registration_key AS key
             FROM mcp_oauth_servers WHERE org_id = $1 AND integration = $2`,
          [ORG, integration],
        )
      ).rows[0] as { clientId: string; sealed: boolean; key: string };
    const preKey = (await stored('notes-pre')).key;
    // Registered again unchanged: the dynamically registered client, and the operator's secret, are kept.
    const dynamic = await stored('notes');
    await client.request(rpc.broker.putMcpOAuthServer, { orgId: ORG, integration: 'notes', url: notes.url });
    expect(await stored('notes')).toEqual(dynamic);
    await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-pre',
      url: closed.url,
      clientId: 'operator-client',
    });
    // …and so is its redirect URI (the one the operator registered the client with).
    expect(await stored('notes-pre')).toEqual({ clientId: 'operator-client', sealed: true, key: preKey });
    expect(JSON.stringify(await client.request(rpc.broker.listMcpOAuthServers, { orgId: ORG }))).not.toContain(secret);
    const { rows } = await db.pool.query(
      `SELECT row_to_json(s)::text AS row FROM mcp_oauth_servers s WHERE integration = 'notes-pre'`,
    );
    expect(String(rows[0].row)).not.toContain(secret);
    expect(String(rows[0].row)).not.toContain(Buffer.from(secret).toString('hex'));

    const catalogKey = await rejection(
      client.request(rpc.broker.putMcpOAuthServer, { orgId: ORG, integration: 'github', url: notes.url }),
    );
    expect(catalogKey.code).toBe('validation_failed');
    // No dynamic registration, no metadata document, no pre-registered client: nothing to be.
    const noClient = await rejection(
      client.request(rpc.broker.putMcpOAuthServer, { orgId: ORG, integration: 'notes-closed', url: closed.url }),
    );
    expect(noClient.code).toBe('upstream_auth_client_unavailable');
  });

  it('sends the person to the server’s own authorization server with resource and PKCE, and stores its token encrypted', async () => {
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP,
      applicationName: 'Agent',
      integration: 'notes',
      scopes: ['notes:tools'],
      callbackUrl: 'https://app.example/cb',
      appState: 'st',
      forUserId: ALICE,
    });
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: people.sessionOf(ALICE),
    });
    expect(view.integrationName).toBe('Notes (test)');
    const decided = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: people.sessionOf(ALICE),
      consentAssertionJson: signedConsent(view.consentChallenge),
    });
    const authorize = new URL(decided.redirectUrl);
    expect(`${authorize.origin}`).toBe(notes.issuer);
    expect(authorize.searchParams.get('resource')).toBe(notes.url);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('scope')).toBe('notes:read notes:write');
    expect(authorize.searchParams.get('redirect_uri')).toBe(notesRedirect);

    // The authorization server (oidc-provider) sends the browser only to a redirect URI the
    // dynamic registration named: this registration's own.
    const back = await authorizeAtOAuthMcp(decided.redirectUrl, 'alice-at-notes', notesRedirect);
    // RFC 9207: the authorization server names itself in the response (openid-client checks it).
    expect(back.searchParams.get('iss')).toBe(notes.issuer);
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: back.search.slice(1),
      stateCookie: decided.oauthState,
      personSessionToken: people.sessionOf(ALICE),
      redirectKey: keyOf(notesRedirect),
    });
    connectionId = done.connectionId;
    expect(new URL(done.redirectUrl).searchParams.get('connectionId')).toBe(connectionId);
    // The code was exchanged naming the resource (the authorization server has no default).
    expect(notes.tokenRequests()).toEqual([{ grantType: 'authorization_code', resource: notes.url }]);

    const token = await client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: false });
    firstToken = token.accessToken;
    expect(token).toMatchObject({ integration: 'notes', apiBaseUrl: notes.url });
    expect(claims(token.accessToken)).toMatchObject({ iss: notes.issuer, aud: notes.url, sub: 'alice-at-notes' });
    const { rows } = await db.pool.query(
      `SELECT encode(credential_ciphertext, 'escape') AS c FROM connections WHERE id = $1`,
      [connectionId],
    );
    expect(String(rows[0].c)).not.toContain(token.accessToken.slice(-20));

    // The token works at the MCP server: the person's own notes account, for this resource.
    const mcp = new Client({ name: 'broker-test', version: '1' });
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(notes.url), {
        requestInit: { headers: { authorization: `Bearer ${token.accessToken}` } },
      }),
    );
    const whoami = await mcp.callTool({ name: 'whoami', arguments: {} });
    expect(whoami.structuredContent).toEqual({ subject: 'alice-at-notes', audience: notes.url });
    await mcp.close();
  });

  it('refuses a callback whose iss is not the server’s authorization server (RFC 9207 mix-up)', async () => {
    const bob = randomUUID();
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP,
      applicationName: 'Agent',
      integration: 'notes',
      scopes: ['notes:tools'],
      callbackUrl: 'https://app.example/cb',
      appState: 'st-bob',
      forUserId: bob,
    });
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: people.sessionOf(bob),
    });
    const decided = await client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: people.sessionOf(bob),
      consentAssertionJson: signedConsent(view.consentChallenge),
    });
    const back = await authorizeAtOAuthMcp(decided.redirectUrl, 'bob-at-notes', notesRedirect);
    back.searchParams.set('iss', 'https://evil.example');
    const done = await client.request(rpc.broker.completeAuthorization, {
      callbackQuery: back.search.slice(1),
      stateCookie: decided.oauthState,
      personSessionToken: people.sessionOf(bob),
      redirectKey: keyOf(notesRedirect),
    });
    expect(new URL(done.redirectUrl).searchParams.get('error')).toBe('source_error');
    expect(done.connectionId).toBe('');
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM connections WHERE user_id = $1`, [bob]);
    expect(rows[0].n).toBe(0);
  });

  /** A person allows a connect session to `integration`; the authorization request it was sent to. */
  async function allowed(integration: string, person: string) {
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: ORG,
      applicationId: APP,
      applicationName: 'Agent',
      integration,
      scopes: [`${integration}:tools`],
      callbackUrl: 'https://app.example/cb',
      appState: 'st',
      forUserId: person,
    });
    const view = await client.request(rpc.broker.getConnectSession, {
      sessionToken: session.sessionToken,
      personSessionToken: people.sessionOf(person),
    });
    return client.request(rpc.broker.decideConnectSession, {
      sessionToken: session.sessionToken,
      decision: ConnectDecision.ALLOW,
      personSessionToken: people.sessionOf(person),
      consentAssertionJson: signedConsent(view.consentChallenge),
    });
  }

  async function sessionStatus(person: string) {
    const { rows } = await db.pool.query(
      `SELECT status::text AS status, (SELECT count(*)::int FROM connections c WHERE c.user_id = $1) AS n
         FROM connect_sessions WHERE user_id = $1`,
      [person],
    );
    return rows[0] as { status: string; n: number };
  }

  it("refuses a code that came back on another registration's redirect URI, sending nothing to a token endpoint", async () => {
    // Another registration of the org at the same authorization server, with its own URI: an
    // authorization server that answers on it is not the one this person was sent to.
    const other = await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-other',
      url: notes.url,
    });
    const otherRedirect = other.server?.redirectUri ?? '';
    expect(otherRedirect).toMatch(OWN_REDIRECT);
    expect(otherRedirect).not.toBe(notesRedirect);
    const erin = randomUUID();
    const decided = await allowed('notes', erin);
    // A real code, for the session's own client, delivered to the other registration's URI.
    const back = await authorizeAtOAuthMcp(decided.redirectUrl, 'erin-at-notes', notesRedirect);
    const exchanged = notes.tokenRequests().length;
    for (const redirectKey of [keyOf(otherRedirect), '']) {
      const refused = await rejection(
        client.request(rpc.broker.completeAuthorization, {
          callbackQuery: back.search.slice(1),
          stateCookie: decided.oauthState,
          personSessionToken: people.sessionOf(erin),
          redirectKey,
        }),
      );
      // The first try spends the state: a second (on the shared URI) finds nothing to complete.
      expect(refused.code).toBe(redirectKey ? 'upstream_auth_redirect_mismatch' : 'oauth_state_invalid');
    }
    expect(notes.tokenRequests()).toHaveLength(exchanged);
    expect(await sessionStatus(erin)).toEqual({ status: 'failed', n: 0 });
  });

  it('refuses a callback without iss for a public client of a registration from before its own redirect URI', async () => {
    await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-public',
      url: notes.url,
      clientId: 'public-client',
    });
    // Registered before each registration had a key: it shares /v1/connect/callback with every
    // authorization server, so only `iss` tells them apart.
    await db.pool.query(
      `UPDATE mcp_oauth_servers SET registration_key = NULL WHERE org_id = $1 AND integration = 'notes-public'`,
      [ORG],
    );
    const carol = randomUUID();
    const decided = await allowed('notes-public', carol);
    expect(new URL(decided.redirectUrl).searchParams.get('redirect_uri')).toBe(`${GATEWAY}/v1/connect/callback`);
    const callback = new URLSearchParams({ code: 'code-from-somewhere', state: decided.oauthState });
    const refused = await rejection(
      client.request(rpc.broker.completeAuthorization, {
        callbackQuery: callback.toString(),
        stateCookie: decided.oauthState,
        personSessionToken: people.sessionOf(carol),
        redirectKey: '',
      }),
    );
    expect(refused.code).toBe('upstream_auth_issuer_mismatch');
    expect(await sessionStatus(carol)).toEqual({ status: 'failed', n: 0 });
  });

  it('refuses a callback once the server was registered again (another client) since the person was sent', async () => {
    await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-moved',
      url: notes.url,
      clientId: 'first-client',
    });
    const dave = randomUUID();
    const decided = await allowed('notes-moved', dave);
    const moved = await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes-moved',
      url: notes.url,
      clientId: 'second-client',
    });
    // Even on the new registration's own redirect URI, the session stays bound to the old one.
    const callback = new URLSearchParams({ code: 'a-code', state: decided.oauthState, iss: notes.issuer });
    const refused = await rejection(
      client.request(rpc.broker.completeAuthorization, {
        callbackQuery: callback.toString(),
        stateCookie: decided.oauthState,
        personSessionToken: people.sessionOf(dave),
        redirectKey: keyOf(moved.server?.redirectUri ?? ''),
      }),
    );
    expect(refused.code).toBe('upstream_auth_issuer_mismatch');
    expect(refused.message).toContain('changed');
    expect(await sessionStatus(dave)).toEqual({ status: 'failed', n: 0 });
  });

  it('refreshes with the resource when the token is close to expiry', async () => {
    clock.advance(3_600_000);
    const refreshed = await client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: false });
    expect(refreshed.accessToken).not.toBe(firstToken);
    expect(claims(refreshed.accessToken)).toMatchObject({ aud: notes.url, sub: 'alice-at-notes' });
    expect(notes.tokenRequests().at(-1)).toEqual({ grantType: 'refresh_token', resource: notes.url });
  });

  it('a token for another resource is not used: re-registered elsewhere, the person connects again', async () => {
    await client.request(rpc.broker.putMcpOAuthServer, {
      orgId: ORG,
      integration: 'notes',
      url: closed.url,
      clientId: 'operator-client',
    });
    const refused = await rejection(client.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: false }));
    expect(refused.code).toBe('connection_needs_reauth');
    const { rows } = await db.pool.query(`SELECT status::text AS status FROM connections WHERE id = $1`, [
      connectionId,
    ]);
    expect(rows[0].status).toBe('needs_reauth');
    // The app's grant no longer finds a usable connection: the gateway answers with a connect link.
    const found = await client.request(rpc.broker.findUserGrant, {
      orgId: ORG,
      applicationId: APP,
      userId: ALICE,
      integration: 'notes',
    });
    expect(found.connectionId).toBe('');
  });
});
