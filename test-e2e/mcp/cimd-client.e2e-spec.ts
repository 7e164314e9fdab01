import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import {
  Client,
  type OAuthClientProvider,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import {
  addVirtualAuthenticator,
  browserUrl,
  createAccountOnSigninPage,
  launchBrowser,
  signInOnSigninPage,
} from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { startTestIdp, type TestIdp } from '../support/test-idp.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The MCP authorization specification's done-when: the official MCP client
// (@modelcontextprotocol/client), pointed at the gateway's /mcp, gets a 401 naming the
// protected resource metadata, discovers identity's authorization server, identifies itself
// with a Client ID Metadata Document (its client_id is the document's https URL, served here
// with a certificate made for the test) and runs code + PKCE; the person signs in with a
// passkey (Chromium's virtual authenticator) and consents; then it lists tools at /mcp.
// Two organizations allow the same client URL; the token names the application of the
// person's own organization, and a person of no organization that allowed it is refused.
jest.setTimeout(120_000);
/** What the MCP client asks for (its metadata's `scope`) and each organization's application allows. */
const SCOPE = 'github:tools';

let stack: TestStack;
let browser: Browser;
let idp: TestIdp;
let base: string;
let docDir: string;
let docServer: HttpsServer;
let clientUrl = '';
let callbackServer: Server;
let callback = '';
let landed: URL | undefined;
let orgA: { id: string };
let appA: { id: string };
let appB: { id: string };
const admin = () => adminClient(base);

beforeAll(async () => {
  // The client's metadata document, over https on 127.0.0.1 (identity trusts this CA: tests only).
  docDir = mkdtempSync(join(tmpdir(), 'cimd-e2e-'));
  const key = join(docDir, 'key.pem');
  const cert = join(docDir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ],
    { stdio: 'ignore' },
  );
  callbackServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', callback);
    if (url.pathname === '/callback') landed = url;
    res.end('back at the MCP client');
  });
  await new Promise<void>((resolve) => callbackServer.listen(0, '127.0.0.1', resolve));
  callback = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/callback`;
  docServer = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(JSON.stringify(clientMetadata()));
  });
  await new Promise<void>((resolve) => docServer.listen(0, '127.0.0.1', resolve));
  clientUrl = `https://127.0.0.1:${(docServer.address() as AddressInfo).port}/oauth/client-metadata.json`;

  stack = await startTestStack('mcp-cimd', {
    OPERATOR_TOKEN,
    SSO_ALLOW_INSECURE_LOCALHOST: 'true',
    // identity accepts the two test knobs under NODE_ENV=test only (Jest sets it; said here
    // so the stack does not depend on how it was started).
    NODE_ENV: 'test',
    OAUTH_CIMD_TEST_CA_FILE: cert,
    OAUTH_CIMD_ALLOW_LOOPBACK: 'true',
  });
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();
  idp = await startTestIdp(`${base}/v1/auth/sso/callback`);

  // Two organizations allow the same MCP client, each as its own application.
  orgA = await admin().createOrganization('Acme');
  const orgB = await admin().createOrganization('Globex');
  const allow = async (orgId: string) => {
    const res = await admin().call<{ id: string; clientMetadataUrl: string; callbackUrls: string[] }>(
      'POST',
      `/v1/admin/organizations/${orgId}/applications`,
      { name: 'Example MCP Client', clientMetadataUrl: clientUrl, integrations: ['github'], scopes: [SCOPE] },
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ clientMetadataUrl: clientUrl, callbackUrls: [] });
    return res.body;
  };
  appA = await allow(orgA.id);
  appB = await allow(orgB.id);
  // Once per organization: the same URL again in Acme is a conflict.
  const again = await admin().call('POST', `/v1/admin/organizations/${orgA.id}/applications`, {
    name: 'Twice',
    clientMetadataUrl: clientUrl,
  });
  expect(again).toMatchObject({ status: 409, body: { code: 'conflict' } });
  // Acme's people are those its IdP signs in.
  const sso = await admin().call('PUT', `/v1/admin/organizations/${orgA.id}/sso`, {
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    emailDomains: ['acme.test'],
  });
  expect(sso.status).toBe(200);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await idp?.stop();
  docServer?.closeAllConnections();
  await new Promise((resolve) => docServer?.close(resolve));
  callbackServer?.closeAllConnections();
  await new Promise((resolve) => callbackServer?.close(resolve));
  if (docDir) rmSync(docDir, { recursive: true, force: true });
}, 60_000);

/** The document at clientUrl: what the MCP client says of itself. */
function clientMetadata() {
  return {
    client_id: clientUrl,
    client_name: 'Example MCP Client',
    redirect_uris: [callback],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'native',
  };
}

type ClientInfo = Parameters<NonNullable<OAuthClientProvider['saveClientInformation']>>[0];
type Tokens = Parameters<OAuthClientProvider['saveTokens']>[0];
type Discovery = Parameters<NonNullable<OAuthClientProvider['saveDiscoveryState']>>[0];

/** The MCP client's OAuth state, in memory; `authorizationUrl` is where it would open the browser. */
class MemoryAuthProvider implements OAuthClientProvider {
  authorizationUrl: URL | undefined;
  clientMetadataUrl = clientUrl;
  #client: ClientInfo | undefined;
  #tokens: Tokens | undefined;
  #verifier = '';
  #discovery: Discovery | undefined;
  get redirectUrl() {
    return callback;
  }
  get clientMetadata() {
    const { client_id: _, ...metadata } = clientMetadata();
    return { ...metadata, scope: SCOPE };
  }
  clientInformation() {
    return this.#client;
  }
  saveClientInformation(info: ClientInfo) {
    this.#client = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens: Tokens) {
    this.#tokens = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.#verifier = verifier;
  }
  codeVerifier() {
    return this.#verifier;
  }
  saveDiscoveryState(state: Discovery) {
    this.#discovery = state;
  }
  discoveryState() {
    return this.#discovery;
  }
}

/** The official client at /mcp; every answer it gets is kept (to see the 401 it started from). */
function mcpClient(
  auth: MemoryAuthProvider,
  seen: Response[],
): { client: Client; transport: StreamableHTTPClientTransport } {
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', base), {
    authProvider: auth,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      seen.push(res.clone());
      return res;
    },
  });
  return { client: new Client({ name: 'e2e-cimd-client', version: '1.0.0' }), transport };
}

/** The browser leg: the authorization URL the MCP client produced, signed in by `signIn`, then Allow if asked. */
async function authorizeInBrowser(
  url: URL,
  signIn: (page: Page, context: BrowserContext) => Promise<void>,
  page: Page,
  context: BrowserContext,
): Promise<{ consentText: string; back: URL }> {
  landed = undefined;
  await page.goto(url.href);
  await signIn(page, context);
  let consentText = '';
  if (new URL(page.url()).pathname.startsWith('/oauth/interaction/')) {
    consentText = (await page.textContent('body')) ?? '';
    await Promise.all([page.waitForURL(`${callback}**`), page.click('button[value=allow]')]);
  }
  await waitFor('the redirect back to the MCP client', () => Promise.resolve(landed !== undefined));
  return { consentText, back: landed ?? new URL(callback) };
}

const claimsOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

describe('the official MCP client with a Client ID Metadata Document', () => {
  it('discovers the authorization server from a 401, gets a token for a passkey person of an organization that allowed it, and lists tools', async () => {
    // Alice is Acme's (provisioned by its SSO), and adds a passkey in this browser.
    idp.user = { sub: 'idp-alice', email: 'alice@acme.test', email_verified: true, name: 'Alice Acme' };
    const context = await browser.newContext();
    const page = await context.newPage();
    await addVirtualAuthenticator(context, page);
    await page.goto(`${base}/v1/auth/signin`);
    const started = await page.evaluate(async () => {
      const res = await fetch('/v1/auth/sso/start', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ organization: 'alice@acme.test', returnTo: '/v1/auth/session' }),
      });
      return (await res.json()) as { authorizationUrl: string };
    });
    await page.goto(started.authorizationUrl);
    await page.waitForURL(`${base}/v1/auth/session`);
    const aliceId = (JSON.parse((await page.textContent('body')) ?? '{}') as { userId: string }).userId;
    await page.goto(`${base}/v1/auth/signin`);
    const added = await page.evaluate(async () => {
      const lib = (
        globalThis as unknown as { SimpleWebAuthnBrowser?: { startRegistration: (o: unknown) => Promise<unknown> } }
      ).SimpleWebAuthnBrowser;
      const post = (path: string, body: unknown) =>
        fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const options = await (await post('/v1/auth/passkeys/registration/options', {})).json();
      if (!lib) return { error: 'no SimpleWebAuthnBrowser on this page' };
      const response = await lib.startRegistration({ optionsJSON: options });
      const verified = (await (await post('/v1/auth/passkeys/registration/verify', { response })).json()) as object;
      // Signed out: the authorization below signs in with the passkey alone.
      await fetch('/v1/auth/session', { method: 'DELETE' });
      return verified;
    });
    expect(added).toEqual({ userId: aliceId, newUser: false });

    const auth = new MemoryAuthProvider();
    const seen: Response[] = [];
    const first = mcpClient(auth, seen);
    await expect(first.client.connect(first.transport)).rejects.toBeInstanceOf(UnauthorizedError);
    // The gateway's 401 names its protected resource metadata; identity is the authorization server.
    const challenge = seen.find((r) => r.status === 401)?.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource`);
    const authorizationUrl = auth.authorizationUrl ?? new URL(base);
    expect(authorizationUrl.origin + authorizationUrl.pathname).toBe(`${base}/oauth/auth`);
    expect(authorizationUrl.searchParams.get('client_id')).toBe(clientUrl);
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');

    const { consentText, back } = await authorizeInBrowser(authorizationUrl, signInOnSigninPage, page, context);
    // The consent page names the client as its document does, the document's host and the redirect host.
    expect(consentText).toContain('Example MCP Client');
    expect(consentText).toContain(new URL(clientUrl).host);
    expect(consentText).toContain(new URL(callback).host);
    expect(back.searchParams.get('error')).toBeNull();
    await first.transport.finishAuth(back.searchParams);
    await context.close();

    const tokens = auth.tokens() ?? { access_token: '' };
    // The token names Acme's application (not Globex's, which allowed the same URL) and Alice.
    expect(claimsOf(tokens.access_token)).toMatchObject({
      client_id: clientUrl,
      org_id: orgA.id,
      app_id: appA.id,
      sub: aliceId,
      scope: SCOPE,
    });
    expect(claimsOf(tokens.access_token)['app_id']).not.toBe(appB.id);

    const again = mcpClient(auth, []);
    await again.client.connect(again.transport);
    const listed = await again.client.listTools();
    expect(Array.isArray(listed.tools)).toBe(true);
    await again.client.close();

    // Acme's admin sees Alice's grant on Acme's application, Globex's none.
    const grants = async (orgId: string, appId: string) =>
      (
        await admin().call<{ grants: { userId: string }[] }>(
          'GET',
          `/v1/admin/organizations/${orgId}/applications/${appId}/oauth-grants`,
        )
      ).body.grants;
    expect((await grants(orgA.id, appA.id)).map((g) => g.userId)).toEqual([aliceId]);
  });

  it('refuses a person of no organization that allowed the client, with a coded access_denied', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await addVirtualAuthenticator(context, page);
    const auth = new MemoryAuthProvider();
    const first = mcpClient(auth, []);
    await expect(first.client.connect(first.transport)).rejects.toBeInstanceOf(UnauthorizedError);
    const { back } = await authorizeInBrowser(
      auth.authorizationUrl ?? new URL(base),
      (p) => createAccountOnSigninPage(p, 'Mallory'),
      page,
      context,
    );
    await context.close();
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toMatch(/^client_not_allowed: /);
    expect(auth.tokens()).toBeUndefined();
  });
});
