import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { addVirtualAuthenticator, allowOnConsentPage, browserUrl, launchBrowser } from '../support/browser.js';
import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { freePort, rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The connect flow (steps 1-3) as an app backend and a person in a browser live it: the
// app starts a connect session with its API key, the person consents, creates a passkey,
// signs in at the (simulated) source, and the app's callback receives a connectionId.
// Then the attacks, each failing with nothing stored, and a grep of every service's logs
// for every secret the run saw.
const CLIENT_ID = 'cg-e2e-demo';
const CLIENT_SECRET = 'cg-e2e-demo-secret-0123456789';

let stack: TestStack;
let demo: RunningSimulator;
let admin: AdminClient;
let browser: Browser;
let base: string;
let appServer: Server;
let appCallback: string;
let nc: NatsConnection;
let db: pg.Client;
const callbacks: URL[] = [];
/** Every secret this run saw; none may appear in any service's logs. */
const secrets = new Set<string>();
let challengesSeen = 0;

interface App {
  orgId: string;
  appId: string;
  key: string;
}
let appA: App;
let appB: App;
let otherOrg: App;

beforeAll(async () => {
  demo = await startSimulator({ provider: 'demo' });
  stack = await startTestStack('connect-flow', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_DEMO_BASE_URL: demo.url,
    INTEGRATION_DEMO_CLIENT_ID: CLIENT_ID,
    INTEGRATION_DEMO_CLIENT_SECRET: CLIENT_SECRET,
    // One shard: the deletion test stops the Personal Server whole and starts it again.
    SHARD_COUNT: '1',
  });
  base = browserUrl(stack.gatewayUrl);
  await demo.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`${base}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  secrets.add(CLIENT_SECRET);

  // The app backend's callback: records what arrives.
  const port = await freePort();
  appCallback = `http://127.0.0.1:${port}/callback`;
  appServer = createServer((req, res) => {
    const url = new URL(req.url!, appCallback);
    // Browsers also ask for /favicon.ico; only the callback counts.
    if (url.pathname === '/callback') callbacks.push(url);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('app got the callback');
  });
  await new Promise<void>((r) => appServer.listen(port, '127.0.0.1', r));

  admin = adminClient(stack.gatewayUrl);
  const newApp = async (orgId: string, name: string, callbackUrls = [appCallback]): Promise<App> => {
    const app = await admin.createApplication(orgId, {
      name,
      callbackUrls,
      integrations: ['demo'],
      scopes: ['demo:read:notes', 'demo:read:profile'],
    });
    const key = await admin.issueApiKey(app.id);
    secrets.add(key.secret);
    return { orgId, appId: app.id, key: key.secret };
  };
  const org = await admin.createOrganization('Connect Org');
  // The org layer of policy allows no integration until listed (secure default): the apps read notes.
  expect(
    (
      await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, {
        integrations: ['demo', 'demo-keys'],
      })
    ).status,
  ).toBe(200);
  appA = await newApp(org.id, 'Notes Digest <b>');
  appB = await newApp(org.id, 'Second App');
  otherOrg = await newApp((await admin.createOrganization('Other Org')).id, 'Other Org App');

  browser = await launchBrowser();
  nc = await connect(stack.natsOptions());
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
}, 240_000);

afterAll(async () => {
  await db?.end();
  await nc?.drain();
  await browser?.close();
  await new Promise((r) => appServer?.close(r));
  await stack?.stop();
  await demo?.stop();
}, 60_000);

async function createSession(app: App, body: Record<string, unknown>) {
  const res = await fetch(`${stack.gatewayUrl}/v1/connect/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${app.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { id: string; connectUrl: string; expiresAt: string; code?: string };
  if (json.connectUrl) secrets.add(json.connectUrl.split('/').pop()!);
  return { status: res.status, body: json };
}

const getConnection = (app: App, id: string) =>
  fetch(`${stack.gatewayUrl}/v1/connections/${id}`, { headers: { authorization: `Bearer ${app.key}` } });
const queryRecords = (app: App, id: string) =>
  fetch(`${stack.gatewayUrl}/v1/connections/${id}/records`, { headers: { authorization: `Bearer ${app.key}` } });

async function count(table: string): Promise<number> {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM connection_broker.${table}`);
  return rows[0].n as number;
}

/** A person with a fresh browser profile and a platform authenticator; records what crosses the wire. */
async function person(): Promise<{ context: BrowserContext; page: Page; seen: { url: string; body?: string }[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await addVirtualAuthenticator(context, page);
  const seen: { url: string; body?: string }[] = [];
  page.on('request', (request) => seen.push({ url: request.url(), body: request.postData() ?? undefined }));
  page.on('response', async (response) => {
    if (response.url().includes('/v1/auth/passkeys/') && response.url().endsWith('/options')) {
      const body = (await response.json().catch(() => ({}))) as {
        challenge?: string;
        options?: { challenge?: string };
      };
      const challenge = body.challenge ?? body.options?.challenge;
      if (challenge) {
        secrets.add(challenge);
        challengesSeen += 1;
      }
    }
  });
  return { context, page, seen };
}

/** Consent page → passkey → consent again → Allow; ends wherever Allow leads. */
async function consentWithNewPasskey(page: Page, connectUrl: string, name: string) {
  await page.goto(connectUrl.replace(new URL(connectUrl).origin, base));
  await page.getByRole('link', { name: 'Continue with a passkey' }).click();
  await page.waitForURL(/\/v1\/auth\/signin/);
  await page.fill('#display-name', name);
  await Promise.all([page.waitForURL(/\/v1\/connect\/[A-Za-z0-9_-]{43}$/), page.click('#create-account')]);
  await allowOnConsentPage(page);
}

async function sourceLogin(page: Page, login: string, decision: 'allow' | 'deny' = 'allow') {
  await page.waitForURL((url) => url.origin === new URL(demo.url).origin);
  await page.fill('#login', login);
  await page.fill('#password', 'password');
  await page.click('#sign-in');
  await page.click(decision === 'allow' ? '#allow' : '#deny');
}

async function cookiesOf(context: BrowserContext) {
  for (const cookie of await context.cookies()) if (cookie.value.length >= 16) secrets.add(cookie.value);
}

describe('the connect flow in a browser', () => {
  let connectionId = '';
  let alice: Awaited<ReturnType<typeof person>>;
  let sourceRedirect = '';

  it("walks from the app's connect session to its callback with a connectionId", async () => {
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
      state: 'app-state-1',
    });
    expect(session.status).toBe(201);
    expect(session.body.connectUrl).toMatch(/^http:\/\/localhost:\d+\/v1\/connect\/[A-Za-z0-9_-]{43}$/);
    expect(new Date(session.body.expiresAt).getTime() - Date.now()).toBeGreaterThan(9 * 60_000);

    alice = await person();
    const { page, context, seen } = alice;
    await page.goto(session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base));
    // The consent page: app name (escaped), integration, each scope in plain words.
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
      'Notes Digest <b> wants to access your Demo Notes data',
    );
    expect(await page.textContent('main')).toContain('Read your notes.');

    await consentWithNewPasskey(page, session.body.connectUrl, 'Alice');
    await sourceLogin(page, 'alice');
    await page.waitForURL((url) => url.href.startsWith(appCallback));

    const back = callbacks.at(-1)!;
    connectionId = back.searchParams.get('connectionId')!;
    expect(connectionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(back.searchParams.get('state')).toBe('app-state-1');

    // The browser went to the source with PKCE S256 and a state, and came back with a code.
    const authorize = new URL(seen.find((s) => s.url.startsWith(`${demo.url}/oauth/authorize`))!.url);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    sourceRedirect = seen.find((s) => s.url.startsWith(`${base}/v1/connect/callback`))!.url;
    const sourceParams = new URL(sourceRedirect).searchParams;
    secrets.add(sourceParams.get('code')!);
    secrets.add(sourceParams.get('state')!);
    await cookiesOf(context);

    const res = await getConnection(appA, connectionId);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      id: connectionId,
      integration: 'demo',
      status: 'active',
      scopes: ['demo:read:notes'],
      createdAt: expect.any(String),
    });

    // The stored token works at the source (asked the way the sync-worker asks).
    const token = await new RpcClient(nc).request(rpc.broker.getAccessToken, { connectionId });
    secrets.add(token.accessToken);
    expect(
      (await fetch(`${token.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${token.accessToken}` } })).status,
    ).toBe(200);

    // The demo source is synced by pulling, like every API source: the app reads the notes.
    const notes = await waitFor('the demo notes to be synced and readable', async () => {
      const r = await fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/records?type=document.note&limit=100`, {
        headers: { authorization: `Bearer ${appA.key}` },
      });
      if (r.status !== 200) return undefined;
      const body = (await r.json()) as { records: { type: string; data: { source: string; title: string } }[] };
      return body.records.length === 25 ? body.records : undefined;
    });
    expect(notes.every((n) => n.type === 'document.note' && n.data.source === 'demo' && n.data.title !== '')).toBe(
      true,
    );
  }, 90_000);

  it('a second app reuses the connection: the person confirms, no second source login, its own grant', async () => {
    const before = (await demo.control.counters()).codesIssued;
    const session = await createSession(appB, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
      state: 'b',
    });
    const { page } = alice;
    await page.goto(session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base));
    expect(await page.textContent('main')).toContain('you will not be asked to sign in to Demo Notes again');
    await allowOnConsentPage(page);
    await page.waitForURL((url) => url.href.startsWith(appCallback) && url.searchParams.get('state') === 'b');
    expect(callbacks.at(-1)!.searchParams.get('connectionId')).toBe(connectionId);
    expect((await demo.control.counters()).codesIssued).toBe(before);
    const res = await getConnection(appB, connectionId);
    expect(res.status).toBe(200);
  }, 60_000);

  it('an app giving up its grant loses the connection at once; the other app keeps it', async () => {
    const given = await fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/grant`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${appB.key}` },
    });
    expect(given.status).toBe(200);
    expect((await getConnection(appB, connectionId)).status).toBe(404);
    expect((await getConnection(appA, connectionId)).status).toBe(200);
  });

  it('answers 404 for the connection to an API key of another organization', async () => {
    const res = await getConnection(otherOrg, connectionId);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'connection_not_found' });
    expect((await getConnection(otherOrg, '00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('an app of another organization: the consent page explains the conflict, then the app gets error=conflict', async () => {
    const connectionsBefore = await count('connections');
    const before = (await demo.control.counters()).codesIssued;
    const session = await createSession(otherOrg, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
      state: 'elsewhere',
    });
    const { page } = alice;
    await page.goto(session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base));
    await allowOnConsentPage(page);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
      'This account is already connected',
    );
    expect(await page.getByRole('alert').textContent()).toContain('through another organization');
    await page.getByRole('link', { name: 'Back to Other Org App' }).click();
    await page.waitForURL((url) => url.href.startsWith(appCallback) && url.searchParams.get('state') === 'elsewhere');
    expect(Object.fromEntries(callbacks.at(-1)!.searchParams)).toEqual({ error: 'conflict', state: 'elsewhere' });
    // No source login was asked for, and nothing was stored.
    expect((await demo.control.counters()).codesIssued).toBe(before);
    expect(await count('connections')).toBe(connectionsBefore);
  }, 60_000);

  it('refuses a callback URL that is not exactly a registered one, storing nothing', async () => {
    const sessions = await count('connect_sessions');
    for (const callbackUrl of [
      `${appCallback}/`,
      `${appCallback}?x=1`,
      appCallback.replace('127.0.0.1', 'localhost'),
      'https://evil.example/callback',
    ]) {
      const res = await createSession(appA, { integration: 'demo', scopes: ['demo:read:notes'], callbackUrl });
      expect(res).toMatchObject({ status: 422, body: { code: 'callback_url_not_registered' } });
    }
    // Another org's key cannot borrow this org's app either: it is its own app, with its own callback list.
    const unregisteredScope = await createSession(appA, {
      integration: 'demo',
      scopes: ['github:read:repos'],
      callbackUrl: appCallback,
    });
    expect(unregisteredScope).toMatchObject({ status: 422, body: { code: 'scope_not_allowed' } });
    expect(await count('connect_sessions')).toBe(sessions);
  });

  it('refuses a replayed callback (state spent) and a forged state, storing nothing', async () => {
    const connections = await count('connections');
    const grants = await count('grants');
    const replay = await alice.page.goto(sourceRedirect);
    expect(replay?.status()).toBe(400);
    const forged = await alice.page.goto(`${base}/v1/connect/callback?code=abc&state=forged-state`);
    expect(forged?.status()).toBe(400);
    expect(await alice.page.textContent('h1')).toBe('This sign-in cannot be completed');
    expect(await count('connections')).toBe(connections);
    expect(await count('grants')).toBe(grants);
  });

  it('the source refuses a replayed code, and a code without the PKCE verifier', async () => {
    const code = new URL(sourceRedirect).searchParams.get('code')!;
    const exchange = (extra: Record<string, string>) =>
      fetch(`${demo.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: `${base}/v1/connect/callback`,
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          ...extra,
        }),
      });
    const withoutVerifier = await exchange({});
    expect(withoutVerifier.status).toBe(400);
    expect(await withoutVerifier.json()).toMatchObject({ error: 'invalid_grant' });
    const replayed = await exchange({ code_verifier: 'a'.repeat(43) });
    expect(replayed.status).toBe(400);
    // Without PKCE the source does not even issue a code.
    const noPkce = await fetch(
      `${demo.url}/oauth/authorize?response_type=code&client_id=${CLIENT_ID}&redirect_uri=${encodeURIComponent(`${base}/v1/connect/callback`)}&state=s&scope=notes.read`,
      { redirect: 'manual' },
    );
    expect(noPkce.status).toBe(302);
    const refused = new URL(noPkce.headers.get('location')!);
    expect(refused.searchParams.get('error')).toBe('invalid_request');
    expect(refused.searchParams.get('code')).toBeNull();
  });

  it('an expired connect session shows an explanation and cannot be allowed', async () => {
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
    });
    await db.query(
      `UPDATE connection_broker.connect_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [session.body.id],
    );
    const response = await alice.page.goto(
      session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base),
    );
    expect(response?.status()).toBe(410);
    expect(await alice.page.textContent('h1')).toBe('This link has expired');
  });

  it("Allow is honoured only with the person's passkey signature over this consent; a forged one shows the page again", async () => {
    const grants = await count('grants');
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:profile'],
      callbackUrl: appCallback,
      state: 'signed',
    });
    const carol = await person();
    try {
      const url = session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base);
      await consentWithNewPasskey(carol.page, url, 'Carol');
      await sourceLogin(carol.page, 'bob');
      await carol.page.waitForURL((u) => u.href.startsWith(appCallback) && u.searchParams.get('state') === 'signed');
      // A second link; the form posted without the passkey (a signature made up, as a script of
      // another page or an old browser would send) is refused by the Personal Server.
      const again = await createSession(appB, {
        integration: 'demo',
        scopes: ['demo:read:profile'],
        callbackUrl: appCallback,
        state: 'forged',
      });
      await carol.page.goto(again.body.connectUrl.replace(new URL(again.body.connectUrl).origin, base));
      const forged = JSON.stringify({ id: 'x', rawId: 'x', type: 'public-key', response: { clientDataJSON: 'e30' } });
      const [answer] = await Promise.all([
        carol.page.waitForResponse((r) => r.request().method() === 'POST'),
        carol.page.evaluate(`(() => {
          const form = document.getElementById('consent');
          document.getElementById('assertion').value = ${JSON.stringify(forged)};
          const decision = document.createElement('input');
          decision.type = 'hidden';
          decision.name = 'decision';
          decision.value = 'allow';
          form.appendChild(decision);
          form.submit();
        })()`),
      ]);
      expect(answer.status()).toBe(422);
      await carol.page.waitForLoadState();
      expect(await carol.page.getByRole('alert').textContent()).toContain('did not sign this consent');
      expect(await count('grants')).toBe(grants + 1);
      // The link is still usable: signed by the passkey, it goes through.
      await allowOnConsentPage(carol.page);
      await carol.page.waitForURL((u) => u.href.startsWith(appCallback) && u.searchParams.get('state') === 'forged');
      expect(await count('grants')).toBe(grants + 2);
    } finally {
      await carol.context.close();
    }
  }, 60_000);

  it('a denied consent returns access_denied and the state to the app, storing no connection', async () => {
    const connections = await count('connections');
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:profile'],
      callbackUrl: appCallback,
      state: 'deny-me',
    });
    const bob = await person();
    await bob.page.goto(session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, base));
    await bob.page.getByRole('button', { name: 'Deny' }).click();
    await bob.page.waitForURL((url) => url.href.startsWith(appCallback));
    const back = callbacks.at(-1)!;
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('deny-me');
    expect(back.searchParams.get('connectionId')).toBeNull();
    expect(await count('connections')).toBe(connections);
    await bob.context.close();
  }, 60_000);

  it('a person who denies at the source sends the app access_denied, storing no connection', async () => {
    const connections = await count('connections');
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
      state: 'src-deny',
    });
    const carol = await person();
    await consentWithNewPasskey(carol.page, session.body.connectUrl, 'Carol');
    await sourceLogin(carol.page, 'bob', 'deny');
    await carol.page.waitForURL((url) => url.href.startsWith(appCallback));
    expect(callbacks.at(-1)!.searchParams.get('error')).toBe('access_denied');
    expect(callbacks.at(-1)!.searchParams.get('state')).toBe('src-deny');
    expect(await count('connections')).toBe(connections);
    await cookiesOf(carol.context);

    // The passkey ceremony's verify request, replayed: its challenge is single-use.
    const verify = carol.seen.find((s) => s.url.endsWith('/v1/auth/passkeys/registration/verify'));
    expect(verify?.body).toBeDefined();
    const replayed = await carol.page.request.post(verify!.url, {
      data: verify!.body,
      headers: { 'content-type': 'application/json' },
    });
    expect(replayed.status()).toBe(400);
    await carol.context.close();
  }, 90_000);

  it('an API-key source: the person pastes the key on the consent page (a mistyped one is refused), no source login', async () => {
    const app = await admin.createApplication(appA.orgId, {
      name: 'Keys App',
      callbackUrls: [appCallback],
      integrations: ['demo-keys'],
      scopes: ['demo-keys:read:notes'],
    });
    const key = await admin.issueApiKey(app.id);
    secrets.add(key.secret);
    const res = await fetch(`${stack.gatewayUrl}/v1/connect/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        integration: 'demo-keys',
        scopes: ['demo-keys:read:notes'],
        callbackUrl: appCallback,
        state: 'keys',
      }),
    });
    expect(res.status).toBe(201);
    const { connectUrl } = (await res.json()) as { connectUrl: string };
    secrets.add(connectUrl.split('/').pop()!);
    const erin = await person();
    const sourceKey = `dk_${randomBytes(16).toString('hex')}`;
    secrets.add(sourceKey);
    try {
      await erin.page.goto(connectUrl.replace(new URL(connectUrl).origin, base));
      await erin.page.getByRole('link', { name: 'Continue with a passkey' }).click();
      await erin.page.fill('#display-name', 'Erin');
      await Promise.all([
        erin.page.waitForURL(/\/v1\/connect\/[A-Za-z0-9_-]{43}$/),
        erin.page.click('#create-account'),
      ]);
      await erin.page.fill('#apiKey', 'short');
      await allowOnConsentPage(erin.page);
      await expect(erin.page.getByRole('alert').textContent()).resolves.toContain('does not look like');
      await erin.page.fill('#apiKey', sourceKey);
      await allowOnConsentPage(erin.page);
      await erin.page.waitForURL((url) => url.href.startsWith(appCallback) && url.searchParams.get('state') === 'keys');
      const connectionId = callbacks.at(-1)!.searchParams.get('connectionId')!;
      const token = await new RpcClient(nc).request(rpc.broker.getAccessToken, { connectionId });
      expect(token.accessToken).toBe(sourceKey);
      await cookiesOf(erin.context);
    } finally {
      await erin.context.close();
    }
  }, 90_000);

  it("the consent form refuses a post without the browser's CSRF token", async () => {
    const session = await createSession(appA, {
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: appCallback,
    });
    const res = await fetch(
      session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, stack.gatewayUrl),
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'csrf=guess&decision=deny',
        redirect: 'manual',
      },
    );
    expect(res.status).toBe(403);
    // Still pending: the real person can still decide.
    expect(
      (await fetch(session.body.connectUrl.replace(new URL(session.body.connectUrl).origin, stack.gatewayUrl))).status,
    ).toBe(200);
  });

  it('the example app backend (examples/demo-app, what `pnpm demo` runs) registers itself and completes the flow', async () => {
    const { startDemoApp } = (await import(pathToFileURL(join(rootDir, 'examples/demo-app/server.mjs')).href)) as {
      startDemoApp: (o: {
        gatewayUrl: string;
        operatorToken: string;
        port: number;
        stateFile: string;
        log?: (l: string) => void;
      }) => Promise<{ url: string; close(): Promise<void> }>;
    };
    const scratch = mkdtempSync(join(tmpdir(), 'demo-app-'));
    const demoApp = await startDemoApp({
      gatewayUrl: stack.gatewayUrl,
      operatorToken: OPERATOR_TOKEN,
      port: await freePort(),
      stateFile: join(scratch, 'demo-app.json'),
      log: () => undefined,
    });
    secrets.add((JSON.parse(readFileSync(join(scratch, 'demo-app.json'), 'utf8')) as { apiKey: string }).apiKey);
    const dana = await person();
    try {
      await dana.page.goto(demoApp.url);
      await dana.page.getByRole('button', { name: 'Connect Demo Notes' }).click();
      await dana.page.waitForURL(/\/v1\/connect\//);
      await dana.page.getByRole('link', { name: 'Continue with a passkey' }).click();
      await dana.page.fill('#display-name', 'Dana');
      await Promise.all([
        dana.page.waitForURL(/\/v1\/connect\/[A-Za-z0-9_-]{43}$/),
        dana.page.click('#create-account'),
      ]);
      await allowOnConsentPage(dana.page);
      await sourceLogin(dana.page, 'bob');
      await dana.page.waitForURL((url) => url.href.startsWith(`${demoApp.url}/callback`));
      expect(await dana.page.textContent('h1')).toBe('Connected');
      expect(await dana.page.textContent('pre')).toContain('"integration": "demo"');
      // The README's path ends with data: the app reads the person's notes (bob has 25).
      await dana.page.getByRole('link', { name: 'Read its records' }).click();
      await waitFor('the demo app to show the synced notes', async () => {
        await dana.page.reload();
        return (await dana.page.textContent('#count').catch(() => null)) === '20 record(s) on this page';
      });
      expect(await dana.page.textContent('pre')).toContain('"type": "document.note"');
      await cookiesOf(dana.context);
    } finally {
      await dana.context.close();
      await demoApp.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 90_000);

  it("the person sees their connection with each app's grant, and deleting it cuts every app off at once", async () => {
    const session = (await alice.context.cookies(base)).find((c) => c.name === '__Host-cg_session')!;
    const me = (method: string, path: string, cookie = `__Host-cg_session=${session.value}`) =>
      fetch(`${stack.gatewayUrl}${path}`, { method, headers: { cookie } });
    const listed = await me('GET', '/v1/me/connections');
    expect(listed.status).toBe(200);
    const mine = (
      (await listed.json()) as {
        connections: { id: string; grants: { applicationId: string; active: boolean; revokedAt: string | null }[] }[];
      }
    ).connections;
    const entry = mine.find((c) => c.id === connectionId)!;
    expect(entry).toMatchObject({ integration: 'demo', status: 'active', scopes: ['demo:read:notes'] });
    // App A holds its grant; app B gave its grant up earlier in this file.
    expect(
      entry.grants
        .map((g) => ({ app: g.applicationId, active: g.active, revoked: g.revokedAt !== null }))
        .sort((a, b) => a.app.localeCompare(b.app)),
    ).toEqual(
      [
        { app: appA.appId, active: true, revoked: false },
        { app: appB.appId, active: false, revoked: true },
      ].sort((a, b) => a.app.localeCompare(b.app)),
    );

    expect((await me('GET', '/v1/me/connections', '')).status).toBe(401);
    expect((await me('DELETE', `/v1/me/connections/${connectionId}`, '')).status).toBe(401);
    const notMine = await me('DELETE', '/v1/me/connections/00000000-0000-4000-8000-000000000000');
    expect(notMine.status).toBe(404);
    expect(await notMine.json()).toMatchObject({ code: 'connection_not_found' });
    expect((await getConnection(appA, connectionId)).status).toBe(200);
    expect((await queryRecords(appA, connectionId)).status).toBe(200);
    const listedIds = async () =>
      ((await (await me('GET', '/v1/me/connections')).json()) as { connections: { id: string; status: string }[] })
        .connections;

    // A second connection of the same person, deleted while everything is up: the Personal
    // Server confirms before the answer, so it is `deleted` at once.
    const keysApp = await admin.createApplication(appA.orgId, {
      name: 'Keys Reader',
      callbackUrls: [appCallback],
      integrations: ['demo-keys'],
      scopes: ['demo-keys:read:notes'],
    });
    const keysAppKey = (await admin.issueApiKey(keysApp.id)).secret;
    secrets.add(keysAppKey);
    const keysSession = await createSession(
      { orgId: appA.orgId, appId: keysApp.id, key: keysAppKey },
      { integration: 'demo-keys', scopes: ['demo-keys:read:notes'], callbackUrl: appCallback, state: 'keys-2' },
    );
    const sourceKey = `dk_${randomBytes(16).toString('hex')}`;
    secrets.add(sourceKey);
    await alice.page.goto(keysSession.body.connectUrl.replace(new URL(keysSession.body.connectUrl).origin, base));
    await alice.page.fill('#apiKey', sourceKey);
    await allowOnConsentPage(alice.page);
    await alice.page.waitForURL(
      (url) => url.href.startsWith(appCallback) && url.searchParams.get('state') === 'keys-2',
    );
    const keysConnection = callbacks.at(-1)!.searchParams.get('connectionId')!;
    const keysApp2 = { orgId: appA.orgId, appId: keysApp.id, key: keysAppKey };
    expect((await getConnection(keysApp2, keysConnection)).status).toBe(200);
    const deletedNow = await me('DELETE', `/v1/me/connections/${keysConnection}`);
    expect(deletedNow.status).toBe(200);
    expect(await deletedNow.json()).toEqual({
      connectionId: keysConnection,
      status: 'deleted',
      revokedAtSource: false,
    });
    expect((await getConnection(keysApp2, keysConnection)).status).toBe(404);
    const keysQuery = await queryRecords(keysApp2, keysConnection);
    expect(keysQuery.status).toBe(404);
    expect(await keysQuery.json()).toMatchObject({ code: 'connection_not_found' });
    expect((await listedIds()).some((c) => c.id === keysConnection)).toBe(false);

    // The Personal Server is down when the person deletes: access ends at once all the same,
    // and the deletion is kept (outbox) until the Personal Server confirms destroying the records.
    await stack.stopService('personal-server');
    const removed = await me('DELETE', `/v1/me/connections/${connectionId}`);
    expect(removed.status).toBe(202);
    expect(await removed.json()).toEqual({ connectionId, status: 'deleting', revokedAtSource: expect.any(Boolean) });
    expect((await getConnection(appA, connectionId)).status).toBe(404);
    expect((await queryRecords(appA, connectionId)).status).not.toBe(200);
    expect((await listedIds()).find((c) => c.id === connectionId)).toMatchObject({ status: 'deleting' });
    // Deleting it twice is not a second deletion.
    expect((await me('DELETE', `/v1/me/connections/${connectionId}`)).status).toBe(404);

    // Back up: the broker's retry shreds it there, and the connection leaves the person's list.
    await stack.restartService('personal-server');
    await waitFor(
      'the Personal Server to confirm the deletion',
      async () => !(await listedIds()).some((c) => c.id === connectionId),
      60_000,
    );
    const query = await queryRecords(appA, connectionId);
    expect(query.status).toBe(404);
    expect(await query.json()).toMatchObject({ code: 'connection_not_found' });
    expect((await getConnection(appA, connectionId)).status).toBe(404);
    expect((await me('DELETE', `/v1/me/connections/${connectionId}`)).status).toBe(404);
  }, 120_000);

  it("no token, code, state, key, cookie or challenge the run saw appears in any service's logs", async () => {
    await cookiesOf(alice.context);
    expect(secrets.size).toBeGreaterThan(8);
    expect(challengesSeen).toBeGreaterThanOrEqual(2);
    const leaks: string[] = [];
    for (const secret of secrets) {
      if (secret.length < 12) continue;
      for (const line of stack.logs)
        if (line.raw.includes(secret))
          leaks.push(`${line.service}: ${secret.slice(0, 6)}… in ${line.raw.slice(0, 200)}`);
    }
    expect(leaks).toEqual([]);
    expect(stack.logs.length).toBeGreaterThan(100);
  });
});
