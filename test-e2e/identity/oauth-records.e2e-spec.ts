import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { RpcClient } from '@context-gateway/messaging';
import { adminClient as sdkAdmin } from '@context-gateway/node';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';

import {
  addVirtualAuthenticator,
  browserUrl,
  createAccountOnSigninPage,
  launchBrowser,
  sessionCookie,
} from '../support/browser.js';
import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { addSoftPasskey, type SignedInPerson } from '../support/soft-passkey.mjs';
import { connectSourceAccount, newPerson, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// A person's access token on the records API: an application (a public client, as a CLI or
// native agent is) gets a token for a person who signs in with a passkey, and reads that
// person's records with it — only that person's connections, only within the token's scope.
const CLIENT_ID = 'cg-e2e-oauth-github';
const CLIENT_SECRET = 'cg-e2e-oauth-github-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos'];
const insecure = { [oauth.allowInsecureRequests]: true } as const;
jest.setTimeout(90_000);

let stack: TestStack;
let sim: RunningSimulator;
let nc: NatsConnection;
let browser: Browser;
let callbackServer: Server;
let callback = '';
let landed: URL | undefined;
let base: string;
let as: oauth.AuthorizationServer;
let cli: oauth.Client;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  stack = await startTestStack('identity-oauth-records', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    SYNC_INTERVAL_MS: '3600000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  for (const login of ['octo-person', 'octo-other', 'octo-revoked']) {
    await sim.control.createAccount({ login, counts: { repos: 3, starred: 0, issues: 0 } });
  }
  callbackServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', callback);
    if (url.pathname === '/cb') landed = url;
    res.end('back at the app');
  });
  await new Promise<void>((resolve) => callbackServer.listen(0, '127.0.0.1', resolve));
  callback = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/cb`;
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();

  const admin = sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });
  const org = await admin.organizations.create({ name: 'OAuth Records Org' });
  await admin.integrations.set(org.id, ['github']);
  const created = await admin.applications.create(org.id, {
    name: 'Acme Agent',
    callbackUrls: [callback],
    integrations: ['github'],
    scopes: SCOPES,
  });
  await admin.applications.configureOAuthClient(org.id, created.id, { tokenEndpointAuthMethod: 'none' });
  cli = { client_id: created.clientId, token_endpoint_auth_method: 'none' };
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: callback };
  nc = await connect(stack.natsOptions());
  const broker = new RpcClient(nc);
  await waitForBrokerToKnowApp(broker, app, 'github', SCOPES);
  const issuer = new URL(`${base}/oauth`);
  as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  );
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await nc?.close();
  await stack?.stop();
  await sim?.stop();
  callbackServer?.closeAllConnections();
  await new Promise((resolve) => callbackServer?.close(resolve));
}, 60_000);

/** The refresh token issued with each scope set by the last tokensFor(). */
const refreshTokens = new Map<string, string>();
/** The gateway session of the person of the last tokensFor(), signed in in its browser. */
let personSession = '';
/** The person's second passkey, in software: it signs their consents in the connect flow. */
let personSign: SignedInPerson['sign'] = () => Promise.reject(new Error('no person yet'));

/** One person: signs up with a passkey inside the authorization, consents; the app gets tokens per scope set. */
async function tokensFor(
  scopeSets: string[],
  whileSignedIn?: (page: Page, tokens: Record<string, string>) => Promise<void>,
) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await addVirtualAuthenticator(context, page);
  const tokens: Record<string, string> = {};
  refreshTokens.clear();
  for (const [i, scope] of scopeSets.entries()) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint ?? '');
    url.search = new URLSearchParams({
      client_id: cli.client_id,
      redirect_uri: callback,
      response_type: 'code',
      scope,
      resource: base,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    landed = undefined;
    await page.goto(url.href);
    if (i === 0) await createAccountOnSigninPage(page, 'Octo Person');
    if (new URL(page.url()).pathname.startsWith('/oauth/interaction/')) {
      await Promise.all([page.waitForURL(`${callback}**`), page.click('button[value=allow]')]);
    }
    await waitFor('the callback', () => Promise.resolve(landed !== undefined));
    const params = oauth.validateAuthResponse(as, cli, landed ?? new URL(callback), state);
    const response = await oauth.processAuthorizationCodeResponse(
      as,
      cli,
      await oauth.authorizationCodeGrantRequest(as, cli, oauth.None(), params, callback, verifier, insecure),
    );
    tokens[scope] = response.access_token;
    if (response.refresh_token) refreshTokens.set(scope, response.refresh_token);
  }
  await whileSignedIn?.(page, tokens);
  personSession = await sessionCookie(context);
  // A second passkey, in software (it signs the person's consents); its ceremony opens a new session.
  ({ sign: personSign, sessionToken: personSession } = await addSoftPasskey(base, {
    userId: '',
    sessionToken: personSession,
  }));
  await context.close();
  return tokens;
}

const records = (token: string, connectionId: string, type = 'code.repository') =>
  fetch(`${base}/v1/connections/${connectionId}/records?type=${type}`, {
    headers: { authorization: `Bearer ${token}` },
  });

describe("a person's access token on the records API", () => {
  it("reads the person's own connection, nobody else's, and only within its scope", async () => {
    const tokens = await tokensFor(['github:read:repos', 'github:read:profile']);
    const full = tokens['github:read:repos'] ?? '';
    const narrow = tokens['github:read:profile'] ?? '';
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request(base, { headers: { authorization: `Bearer ${full}` } }),
      base,
      insecure,
    );
    const broker = new RpcClient(nc);
    const person = { userId: claims.sub, sessionToken: personSession, sign: personSign };
    const mine = await connectSourceAccount(broker, app, 'github', SCOPES, 'octo-person', person);
    const theirs = await connectSourceAccount(broker, app, 'github', SCOPES, 'octo-other', await newPerson(base));

    const own = await records(full, mine.connectionId);
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ records: expect.any(Array) });

    // Another person's connection, though the app holds a grant on it: not found.
    const other = await records(full, theirs.connectionId);
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ code: 'connection_not_found' });

    // A token without the scope the query needs: 403 naming the scope (RFC 6750).
    const narrowed = await records(narrow, mine.connectionId);
    expect(narrowed.status).toBe(403);
    expect(await narrowed.json()).toMatchObject({ code: 'scope_not_granted' });
    const challenge = narrowed.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="github:read:repos"');

    // A person's token is refused where the route does not keep to the person (an
    // application's view of any connection it holds a grant on).
    const elsewhere = await fetch(`${base}/v1/connections/${theirs.connectionId}`, {
      headers: { authorization: `Bearer ${full}` },
    });
    expect(elsewhere.status).toBe(401);

    // Sync status and "sync now" keep to the person: their own connection yes, another's not found.
    const sync = (connectionId: string, method = 'GET') =>
      fetch(`${base}/v1/connections/${connectionId}/sync`, { method, headers: { authorization: `Bearer ${full}` } });
    expect((await sync(mine.connectionId)).status).toBe(200);
    expect((await sync(mine.connectionId, 'POST')).status).toBe(202);
    const othersSync = await sync(theirs.connectionId);
    expect({ status: othersSync.status, body: await othersSync.json() }).toMatchObject({
      status: 404,
      body: { code: 'connection_not_found' },
    });

    // Starting a connect session keeps to the person: the link is theirs alone.
    const started = await fetch(`${base}/v1/connect/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json' },
      body: JSON.stringify({ integration: 'github', scopes: SCOPES, callbackUrl: app.callbackUrl }),
    });
    expect(started.status).toBe(201);
    const { connectUrl } = (await started.json()) as { connectUrl: string };
    // Someone else who opens it, signs up and allows is refused, on a page saying why.
    const stranger = await browser.newContext();
    try {
      const strangerPage = await stranger.newPage();
      await addVirtualAuthenticator(stranger, strangerPage);
      await strangerPage.goto(connectUrl.replace(new URL(connectUrl).origin, base));
      await strangerPage.getByRole('link', { name: 'Continue with a passkey' }).click();
      await strangerPage.waitForURL((u) => u.pathname === '/v1/auth/signin');
      await createAccountOnSigninPage(strangerPage, 'Someone Else');
      await strangerPage.waitForSelector('button[value=allow]');
      const [refused] = await Promise.all([
        strangerPage.waitForResponse((r) => r.request().method() === 'POST'),
        strangerPage.click('button[value=allow]'),
      ]);
      expect(refused.status()).toBe(403);
      await strangerPage.waitForLoadState();
      expect(await strangerPage.textContent('code')).toBe('connect_session_other_person');
    } finally {
      await stranger.close();
    }

    // Giving up the application's grant keeps to the person too: not another's connection, their own yes.
    const giveUp = (connectionId: string) =>
      fetch(`${base}/v1/connections/${connectionId}/grant`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${full}` },
      });
    const notTheirs = await giveUp(theirs.connectionId);
    expect(notTheirs.status).toBe(404);
    expect(await notTheirs.json()).toMatchObject({ code: 'connection_not_found' });
    expect((await giveUp(mine.connectionId)).status).toBe(200);
    const after = await records(full, mine.connectionId);
    expect(after.status).toBe(403);
    expect(await after.json()).toMatchObject({ code: 'grant_revoked' });
  });
});

describe('a revoked token', () => {
  it('fails on the very next request, at the gateway, without waiting for it to expire', async () => {
    const scope = 'github:read:repos';
    const access = (await tokensFor([scope]))[scope] ?? '';
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request(base, { headers: { authorization: `Bearer ${access}` } }),
      base,
      insecure,
    );
    const person = { userId: claims.sub, sessionToken: personSession, sign: personSign };
    const mine = await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-revoked', person);
    expect((await records(access, mine.connectionId)).status).toBe(200);

    // The application revokes its refresh token (RFC 7009): the grant, its whole family, ends.
    const revoked = await oauth.revocationRequest(as, cli, oauth.None(), refreshTokens.get(scope) ?? '', insecure);
    await oauth.processRevocationResponse(revoked);

    // The access token has minutes left, yet the next request with it is refused.
    const after = await records(access, mine.connectionId);
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ code: 'unauthenticated', detail: 'The access token has been revoked' });
    expect(after.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it('when the person revokes the application at /v1/me/oauth-grants', async () => {
    const scope = 'github:read:repos';
    await tokensFor([scope], async (page, tokens) => {
      const access = tokens[scope] ?? '';
      const claims = await oauth.validateJwtAccessToken(
        as,
        new Request(base, { headers: { authorization: `Bearer ${access}` } }),
        base,
        insecure,
      );
      // Valid until now: an unknown connection is 404, not 401.
      expect((await records(access, '00000000-0000-4000-8000-000000000000')).status).toBe(404);
      // The person, signed in on the gateway, sees which application holds tokens for them.
      await page.goto(`${base}/v1/me/oauth-grants`);
      const listed = await page.evaluate(async () => (await fetch('/v1/me/oauth-grants')).json());
      expect(listed).toMatchObject({
        grants: expect.arrayContaining([
          expect.objectContaining({ id: claims['grant_id'], applicationName: app.name, scopes: [scope] }),
        ]),
      });
      const status = await page.evaluate(
        async (id) => (await fetch(`/v1/me/oauth-grants/${id}`, { method: 'DELETE' })).status,
        claims['grant_id'] as string,
      );
      expect(status).toBe(200);
      const after = await records(access, '00000000-0000-4000-8000-000000000000');
      expect(after.status).toBe(401);
      expect(await after.json()).toMatchObject({ detail: 'The access token has been revoked' });
    });
  });

  it("when an admin revokes all of the application's tokens", async () => {
    const scope = 'github:read:repos';
    const access = (await tokensFor([scope]))[scope] ?? '';
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request(base, { headers: { authorization: `Bearer ${access}` } }),
      base,
      insecure,
    );
    const admin = sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });
    const { grants } = await admin.applications.listOAuthGrants(app.orgId, app.appId);
    expect(grants).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: claims['grant_id'], userId: claims.sub })]),
    );
    const { revokedGrants } = await admin.applications.revokeOAuthTokens(app.orgId, app.appId);
    expect(revokedGrants).toBeGreaterThanOrEqual(1);
    expect((await records(access, '00000000-0000-4000-8000-000000000000')).status).toBe(401);
  });
});
