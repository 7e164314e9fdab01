import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';

import { addVirtualAuthenticator, browserUrl, createAccountOnSigninPage, launchBrowser } from '../support/browser.js';
import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { rootDir, startTestStack, type TestStack } from '../support/test-stack.js';

// The gateway's OAuth 2.1 authorization server as an application meets it: through the
// gateway's public origin only, with oauth4webapi as an app backend would use it, and a
// person who signs in with a passkey in a real browser and consents.
let stack: TestStack;
let browser: Browser;
let admin: AdminClient;
let base: string;
let as: oauth.AuthorizationServer;
let resource: string;
/** The app's callback: a real listener, so the browser's redirect lands somewhere. */
let callbackServer: Server;
let CALLBACK = '';
let landed: URL | undefined;
const insecure = { [oauth.allowInsecureRequests]: true } as const;
let cli: oauth.Client;
let backend: { client: oauth.Client; secret: string; id: string; orgId: string };
jest.setTimeout(60_000);

beforeAll(async () => {
  stack = await startTestStack('identity-oauth', { OPERATOR_TOKEN });
  callbackServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', CALLBACK);
    // The browser also asks for /favicon.ico: only the callback itself counts.
    if (url.pathname === '/cb') landed = url;
    res.end('back at the app');
  });
  await new Promise<void>((resolve) => callbackServer.listen(0, '127.0.0.1', resolve));
  CALLBACK = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/cb`;
  base = browserUrl(stack.gatewayUrl);
  resource = base;
  admin = adminClient(base);
  browser = await launchBrowser();

  const org = await admin.createOrganization('OAuth E2E');
  const app = (name: string) =>
    admin.createApplication(org.id, {
      name,
      callbackUrls: [CALLBACK],
      integrations: ['github'],
      scopes: ['github:read:repos'],
    });
  const cliApp = await app('Acme CLI');
  const backendApp = await app('Acme Backend');
  const path = (id: string) => `/v1/admin/organizations/${org.id}/applications/${id}/oauth-client`;
  // The operator's CLI sets the public client; the admin API the confidential one.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(rootDir, 'tools/cli/cg.mjs'), 'app', 'oauth-client', '--org', org.id, '--app', cliApp.id, '--auth', 'none'],
    { env: { ...process.env, GATEWAY_URL: base, OPERATOR_TOKEN } },
  );
  expect(JSON.parse(stdout)).toMatchObject({ clientId: cliApp.clientId, tokenEndpointAuthMethod: 'none' });
  const confidential = await admin.call<{ clientSecret: string }>('PUT', path(backendApp.id), {
    tokenEndpointAuthMethod: 'client_secret_basic',
    rotateSecret: true,
  });
  expect(confidential.body.clientSecret).toMatch(/^cg_cs_/);
  cli = { client_id: cliApp.clientId, token_endpoint_auth_method: 'none' };
  backend = {
    client: { client_id: backendApp.clientId },
    secret: confidential.body.clientSecret,
    id: backendApp.id,
    orgId: org.id,
  };

  const issuer = new URL(`${base}/oauth`);
  // RFC 8414 discovery at the path-inserted well-known URL, on the gateway's origin.
  as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  );
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  callbackServer?.closeAllConnections();
  await new Promise((resolve) => callbackServer?.close(resolve));
}, 60_000);

const bearer = (token: string) => new Request(resource, { headers: { authorization: `Bearer ${token}` } });

describe('an application discovers the authorization server from the gateway', () => {
  it('follows a 401 to the protected resource metadata and on to the issuer', async () => {
    const refused = await fetch(`${base}/v1/applications/00000000-0000-4000-8000-000000000000`);
    expect(refused.status).toBe(401);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1] ?? '';
    const metadata = (await (await fetch(metadataUrl)).json()) as { resource: string; authorization_servers: string[] };
    expect(metadata).toMatchObject({ resource, authorization_servers: [as.issuer] });
    expect(as.token_endpoint).toBe(`${base}/oauth/token`);
  });
});

describe('client credentials', () => {
  it('gives an application a gateway token for itself', async () => {
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      backend.client,
      await oauth.clientCredentialsGrantRequest(
        as,
        backend.client,
        oauth.ClientSecretBasic(backend.secret),
        new URLSearchParams({ scope: 'github:read:repos', resource }),
        insecure,
      ),
    );
    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    expect(claims).toMatchObject({ sub: backend.client.client_id, aud: resource, scope: 'github:read:repos' });

    // The token works on the API like the application's key, until the application is disabled.
    const read = () =>
      fetch(`${base}/v1/applications/${backend.id}`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const ok = await read();
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ id: backend.id, clientId: backend.client.client_id });
    await admin.updateApplication(backend.orgId, backend.id, { status: 'disabled' });
    try {
      const refused = await read();
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain('resource_metadata=');
    } finally {
      await admin.updateApplication(backend.orgId, backend.id, { status: 'active' });
    }
  });
});

describe('code + PKCE for a person who signs in with a passkey', () => {
  it('signs in, consents, and the app gets rotating tokens; a replayed refresh token ends the family', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await addVirtualAuthenticator(context, page);

    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint ?? '');
    url.search = new URLSearchParams({
      client_id: cli.client_id,
      redirect_uri: CALLBACK,
      response_type: 'code',
      scope: 'github:read:repos',
      resource,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    await page.goto(url.href);
    // Not signed in: the gateway's passkey page, which returns to the authorization.
    expect(new URL(page.url()).pathname).toBe('/v1/auth/signin');
    await createAccountOnSigninPage(page, 'Grace');
    await page.waitForSelector('button[value=allow]');
    const consent = await page.textContent('main');
    expect(consent).toContain('Acme CLI wants to access your Context Gateway data');
    expect(consent).toContain(new URL(CALLBACK).host);
    expect(consent).toContain('github:read:repos');
    await Promise.all([page.waitForURL(`${CALLBACK}**`), page.click('button[value=allow]')]);
    await context.close();

    const params = oauth.validateAuthResponse(as, cli, landed ?? new URL(CALLBACK), state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      cli,
      await oauth.authorizationCodeGrantRequest(as, cli, oauth.None(), params, CALLBACK, verifier, insecure),
    );
    const claims = await oauth.validateJwtAccessToken(as, bearer(tokens.access_token), resource, insecure);
    expect(claims).toMatchObject({ aud: resource, client_id: cli.client_id, scope: 'github:read:repos' });
    expect(claims.sub).toMatch(/^[0-9a-f-]{36}$/);

    const first = tokens.refresh_token ?? '';
    const refresh = (token: string) => oauth.refreshTokenGrantRequest(as, cli, oauth.None(), token, insecure);
    const rotated = await oauth.processRefreshTokenResponse(as, cli, await refresh(first));
    expect(rotated.refresh_token).not.toBe(first);
    await expect(oauth.processRefreshTokenResponse(as, cli, await refresh(first))).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await expect(
      oauth.processRefreshTokenResponse(as, cli, await refresh(rotated.refresh_token ?? '')),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});
