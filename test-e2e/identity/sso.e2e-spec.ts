import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { RpcClient } from '@context-gateway/messaging';
import { adminClient as sdkAdmin } from '@context-gateway/node';
import { rpc } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import * as oauth from 'oauth4webapi';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { addVirtualAuthenticator, browserUrl, launchBrowser, sessionCookie } from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { addSoftPasskey } from '../support/soft-passkey.mjs';
import { connectSourceAccount } from '../support/source-connection.js';
import { type IdpRelyingParty, idTokenFromIdp, startTestIdp, type TestIdp } from '../support/test-idp.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Organization SSO: a second, independent oidc-provider is the organization's IdP. People
// sign in through it from the gateway's sign-in page, are provisioned as members on first
// sign-in, get tokens for applications as passkey people do, and every way the IdP's answer
// can be wrong ends in a coded refusal.
const CLIENT_ID = 'cg-e2e-sso-github';
const CLIENT_SECRET = 'cg-e2e-sso-github-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos'];
const insecure = { [oauth.allowInsecureRequests]: true } as const;
jest.setTimeout(90_000);

let stack: TestStack;
let sim: RunningSimulator;
let idp: TestIdp;
let nc: NatsConnection;
let browser: Browser;
let callbackServer: Server;
let callback = '';
let landed: URL | undefined;
let base: string;
let org: { id: string; slug: string };
let app: { orgId: string; appId: string; name: string; callbackUrl: string };
const admin = () => adminClient(base);
const alice = { sub: 'idp-alice', email: 'alice@acme.test', email_verified: true, name: 'Alice Acme' };
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The application's own client at the organization's IdP (its backend signs people in there too). */
const APP_AT_IDP: IdpRelyingParty = {
  clientId: 'acme-agent-backend',
  clientSecret: 'acme-agent-backend-secret-0123456789',
  redirectUri: 'http://127.0.0.1:9/acme-agent/idp-callback',
};
/** The gateway's client at the IdP, as a relying party whose redirect this test reads. */
const GATEWAY_AT_IDP = (): IdpRelyingParty => ({
  clientId: idp.clientId,
  clientSecret: idp.clientSecret,
  redirectUri: `${base}/v1/auth/sso/callback`,
});
let aliceConnection: { userId: string; connectionId: string } | undefined;

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  stack = await startTestStack('identity-sso', {
    OPERATOR_TOKEN,
    SSO_ALLOW_INSECURE_LOCALHOST: 'true',
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    SYNC_INTERVAL_MS: '3600000',
  });
  base = browserUrl(stack.gatewayUrl);
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await sim.control.createAccount({ login: 'octo-alice', counts: { repos: 2, starred: 0, issues: 0 } });
  idp = await startTestIdp(`${base}/v1/auth/sso/callback`, [APP_AT_IDP]);
  callbackServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', callback);
    if (url.pathname === '/cb') landed = url;
    res.end('back at the app');
  });
  await new Promise<void>((resolve) => callbackServer.listen(0, '127.0.0.1', resolve));
  callback = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/cb`;
  browser = await launchBrowser();

  const sdk = sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });
  org = await sdk.organizations.create({ name: 'Acme SSO' });
  await sdk.integrations.set(org.id, ['github']);
  const created = await sdk.applications.create(org.id, {
    name: 'Acme Agent',
    callbackUrls: [callback],
    integrations: ['github'],
    scopes: SCOPES,
  });
  await sdk.applications.configureOAuthClient(org.id, created.id, { tokenEndpointAuthMethod: 'none' });
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: callback };
  nc = await connect(stack.natsOptions());
  await configureSso({});
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await nc?.close();
  await stack?.stop();
  await sim?.stop();
  await idp?.stop();
  callbackServer?.closeAllConnections();
  await new Promise((resolve) => callbackServer?.close(resolve));
}, 60_000);

async function configureSso(change: Record<string, unknown>) {
  const res = await admin().call('PUT', `/v1/admin/organizations/${org.id}/sso`, {
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    emailDomains: ['acme.test'],
    ...change,
  });
  expect(res.status).toBe(200);
  return res.body;
}

/** A fresh browser (no gateway or IdP session) on the gateway's sign-in page. */
async function freshPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/v1/auth/signin`);
  return { context, page };
}

/** What the sign-in page's button does: asks the gateway where the organization's IdP is (and gets the binding cookie). */
async function startSso(page: Page, organization: string): Promise<{ status: number; body: Record<string, string> }> {
  return page.evaluate(async (org) => {
    const res = await fetch('/v1/auth/sso/start', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ organization: org, returnTo: '/v1/auth/session' }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  }, organization);
}

/** The error page the callback shows: its status and the stable code printed on it. */
async function refusal(page: Page, go: () => Promise<unknown>): Promise<{ status: number; code: string }> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/auth/sso/callback'),
    go(),
  ]);
  await page.waitForLoadState();
  return { status: response.status(), code: (await page.textContent('code')) ?? '' };
}

/** Lets `change` see (and alter) the IdP's next redirect back to the gateway. */
function rewriteCallback(change: (callbackUrl: URL) => void): void {
  idp.onCallback = (url) => {
    idp.onCallback = undefined;
    change(url);
  };
}

describe('the organization SSO settings', () => {
  it('are validated: discovery must answer as the issuer, over https, and the secret is never shown', async () => {
    const wrongIssuer = await admin().call('PUT', `/v1/admin/organizations/${org.id}/sso`, {
      issuer: `${idp.issuer}/elsewhere`,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      emailDomains: ['acme.test'],
    });
    expect(wrongIssuer.status).toBe(422);
    expect(wrongIssuer.body).toMatchObject({ code: 'sso_issuer_invalid' });
    const plainHttp = await admin().call('PUT', `/v1/admin/organizations/${org.id}/sso`, {
      issuer: 'http://idp.example.com',
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      emailDomains: ['acme.test'],
    });
    expect(plainHttp.status).toBe(422);
    expect(plainHttp.body).toMatchObject({ code: 'sso_issuer_invalid' });
    const nobody = await admin().call('PUT', `/v1/admin/organizations/${org.id}/sso`, {
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
    });
    expect(nobody.status).toBe(422);
    expect(nobody.body).toMatchObject({ code: 'validation_failed' });

    const shown = await admin().call('GET', `/v1/admin/organizations/${org.id}/sso`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ issuer: idp.issuer, hasClientSecret: true, emailDomains: ['acme.test'] });
    expect(JSON.stringify(shown.body)).not.toContain(idp.clientSecret);
  });
});

describe('an SSO person and an application', () => {
  it('completes code + PKCE through the IdP and reads their records with the access token', async () => {
    idp.user = alice;
    const issuer = new URL(`${base}/oauth`);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    const cli: oauth.Client = { client_id: (await appClientId()) ?? '', token_endpoint_auth_method: 'none' };
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint ?? '');
    url.search = new URLSearchParams({
      client_id: cli.client_id,
      redirect_uri: callback,
      response_type: 'code',
      scope: 'github:read:repos',
      resource: base,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const context = await browser.newContext();
    const page = await context.newPage();
    landed = undefined;
    await page.goto(url.href);
    // The sign-in page, inside the authorization: "Sign in with your organization".
    await page.fill('#organization-name', 'alice@acme.test');
    await Promise.all([
      page.waitForURL((u) => u.pathname.startsWith('/oauth/interaction/')),
      page.click('#sign-in-sso'),
    ]);
    expect(await page.textContent('body')).toContain('Acme Agent');
    await Promise.all([page.waitForURL(`${callback}**`), page.click('button[value=allow]')]);
    await waitFor('the callback', () => Promise.resolve(landed !== undefined));
    const params = oauth.validateAuthResponse(as, cli, landed ?? new URL(callback), state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      cli,
      await oauth.authorizationCodeGrantRequest(as, cli, oauth.None(), params, callback, verifier, insecure),
    );
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request(base, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      base,
      insecure,
    );
    // The token acts for the person the IdP vouched for: the gateway account SSO provisioned.
    await page.goto(`${base}/v1/auth/session`);
    expect(JSON.parse((await page.textContent('body')) ?? '{}')).toMatchObject({
      userId: claims.sub,
      displayName: 'Alice Acme',
    });
    // An SSO person has no passkey yet: consenting to a grant needs one, so they add one.
    const person = await addSoftPasskey(base, { userId: claims.sub, sessionToken: await sessionCookie(context) });
    await context.close();

    const mine = await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-alice', person);
    // The first sync runs after the consent: wait for its records rather than race it.
    const records = await waitFor('the first sync of the connection', async () => {
      const res = await fetch(`${base}/v1/connections/${mine.connectionId}/records?type=code.repository`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { records: unknown[] };
      return body.records.length > 0 ? body.records : undefined;
    });
    expect(records.length).toBeGreaterThan(0);
    aliceConnection = { userId: claims.sub, connectionId: mine.connectionId };
  });

  it("exchanges the ID token the organization's IdP gave the application for an access token, without a browser (RFC 8693)", async () => {
    idp.user = alice;
    const connection = aliceConnection;
    if (!connection) throw new Error('the code + PKCE case above did not finish');
    // The admin makes the application confidential and names its own client at the IdP.
    const configured = await admin().call(
      'PUT',
      `/v1/admin/organizations/${org.id}/applications/${app.appId}/oauth-client`,
      { tokenEndpointAuthMethod: 'client_secret_basic', rotateSecret: true, idpClientId: APP_AT_IDP.clientId },
    );
    expect(configured.status).toBe(200);
    const { clientSecret, clientId, idpClientId } = configured.body as Record<string, string>;
    expect(idpClientId).toBe(APP_AT_IDP.clientId);
    const issuer = new URL(`${base}/oauth`);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    expect(as.grant_types_supported).toContain(TOKEN_EXCHANGE);
    const backend: oauth.Client = { client_id: clientId ?? '' };
    const exchange = (subjectToken: string) =>
      oauth.genericTokenEndpointRequest(
        as,
        backend,
        oauth.ClientSecretBasic(clientSecret ?? ''),
        TOKEN_EXCHANGE,
        {
          subject_token: subjectToken,
          subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
          resource: base,
          scope: 'github:read:repos',
        },
        insecure,
      );

    // The application signed Alice in at her IdP as its own relying party: it holds her ID token.
    const idToken = await idTokenFromIdp(idp, APP_AT_IDP);
    const tokens = await oauth.processGenericTokenEndpointResponse(as, backend, await exchange(idToken));
    expect(tokens['issued_token_type']).toBe('urn:ietf:params:oauth:token-type:access_token');
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request(base, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      base,
      insecure,
    );
    // The same person the browser sign-in provisioned, and her records through the gateway.
    expect(claims.sub).toBe(connection.userId);
    const res = await fetch(`${base}/v1/connections/${connection.connectionId}/records?type=code.repository`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(res.status).toBe(200);

    // The ID token is spent; the gateway's own ID tokens are not the application's to exchange.
    const replay = await exchange(idToken);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ error: 'invalid_request' });
    const forTheGateway = await exchange(await idTokenFromIdp(idp, GATEWAY_AT_IDP()));
    expect(await forTheGateway.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringContaining('"aud" claim'),
    });
  });
});

async function appClientId(): Promise<string | undefined> {
  const reply = await new RpcClient(nc).request(rpc.identity.getApplication, {
    orgId: app.orgId,
    applicationId: app.appId,
  });
  return reply.application?.clientId;
}

describe("the IdP's answer, when it is wrong", () => {
  it('a nonce that is not the one sent is refused', async () => {
    idp.user = alice;
    const { context, page } = await freshPage();
    const started = await startSso(page, 'alice@acme.test');
    expect(started.status).toBe(200);
    const url = new URL(started.body['authorizationUrl'] ?? '');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    url.searchParams.set('nonce', 'a-nonce-the-gateway-never-sent');
    expect(await refusal(page, () => page.goto(url.href))).toEqual({ status: 401, code: 'sso_response_invalid' });
    await context.close();
  });

  it('an `iss` that is not the IdP (a mix-up) is refused', async () => {
    idp.user = alice;
    const { context, page } = await freshPage();
    rewriteCallback((tampered) => {
      expect(tampered.searchParams.get('iss')).toBe(idp.issuer);
      tampered.searchParams.set('iss', 'https://attacker.example');
    });
    const started = await startSso(page, org.slug);
    expect(await refusal(page, () => page.goto(started.body['authorizationUrl'] ?? ''))).toEqual({
      status: 401,
      code: 'sso_response_invalid',
    });
    await context.close();
  });

  it('a state used once is refused the second time, even with the browser cookie put back', async () => {
    idp.user = alice;
    const { context, page } = await freshPage();
    const started = await startSso(page, 'alice@acme.test');
    const binding = (await context.cookies(base)).find((c) => c.name === '__Host-cg_sso');
    expect(binding).toBeDefined();
    let callbackUrl = '';
    rewriteCallback((url) => {
      callbackUrl = url.href;
    });
    await page.goto(started.body['authorizationUrl'] ?? '');
    await page.waitForURL(`${base}/v1/auth/session`);
    await context.addCookies([{ ...binding!, expires: Math.floor(Date.now() / 1000) + 300 }]);
    expect(await refusal(page, () => page.goto(callbackUrl))).toEqual({ status: 400, code: 'sso_state_invalid' });
    await context.close();
  });

  it('a person whose verified email is outside the domains is not a member', async () => {
    idp.user = { sub: 'idp-mallory', email: 'mallory@elsewhere.test', email_verified: true, name: 'Mallory' };
    const { context, page } = await freshPage();
    const started = await startSso(page, org.slug);
    expect(await refusal(page, () => page.goto(started.body['authorizationUrl'] ?? ''))).toEqual({
      status: 403,
      code: 'sso_membership_refused',
    });
    await context.close();
    // Nor is one whose address in the domain the IdP has not verified.
    idp.user = { sub: 'idp-eve', email: 'eve@acme.test', email_verified: false, name: 'Eve' };
    const other = await freshPage();
    const again = await startSso(other.page, org.slug);
    expect(await refusal(other.page, () => other.page.goto(again.body['authorizationUrl'] ?? ''))).toEqual({
      status: 403,
      code: 'sso_membership_refused',
    });
    await other.context.close();
  });

  it('an address no organization signs in is answered sso_not_configured', async () => {
    const { context, page } = await freshPage();
    expect(await startSso(page, 'someone@nowhere.test')).toMatchObject({
      status: 404,
      body: { code: 'sso_not_configured' },
    });
    await context.close();
  });
});

describe('an organization that requires SSO', () => {
  it('lets its member add a passkey, but not sign in with the passkey alone', async () => {
    idp.user = { sub: 'idp-bob', email: 'bob@acme.test', email_verified: true, name: 'Bob Acme' };
    const { context, page } = await freshPage();
    await addVirtualAuthenticator(context, page);
    const started = await startSso(page, 'bob@acme.test');
    await page.goto(started.body['authorizationUrl'] ?? '');
    await page.waitForURL(`${base}/v1/auth/session`);
    const signedIn = JSON.parse((await page.textContent('body')) ?? '{}') as { userId: string };
    await page.goto(`${base}/v1/auth/signin`);

    // A passkey for the same account, added with the fresh SSO session.
    const added = await page.evaluate(async () => {
      const lib = (
        globalThis as unknown as { SimpleWebAuthnBrowser: { startRegistration: (o: unknown) => Promise<unknown> } }
      ).SimpleWebAuthnBrowser;
      const post = (path: string, body: unknown) =>
        fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const options = await (await post('/v1/auth/passkeys/registration/options', {})).json();
      const response = await lib.startRegistration({ optionsJSON: options });
      return (await post('/v1/auth/passkeys/registration/verify', { response })).json();
    });
    expect(added).toEqual({ userId: signedIn.userId, newUser: false });

    const passkeySignIn = () =>
      page.evaluate(async () => {
        const lib = (
          globalThis as unknown as { SimpleWebAuthnBrowser: { startAuthentication: (o: unknown) => Promise<unknown> } }
        ).SimpleWebAuthnBrowser;
        await fetch('/v1/auth/session', { method: 'DELETE' });
        const post = (path: string, body: unknown) =>
          fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const options = await (await post('/v1/auth/passkeys/authentication/options', {})).json();
        const response = await lib.startAuthentication({ optionsJSON: options });
        const res = await post('/v1/auth/passkeys/authentication/verify', { response });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      });

    await configureSso({ clientSecret: undefined, ssoRequired: true });
    expect(await passkeySignIn()).toMatchObject({ status: 403, body: { code: 'sso_required' } });

    await configureSso({ clientSecret: undefined, ssoRequired: false });
    expect(await passkeySignIn()).toMatchObject({ status: 200, body: { userId: signedIn.userId } });
    await context.close();
  });
});
