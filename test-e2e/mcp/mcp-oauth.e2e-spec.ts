import { type OAuthUpstreamProcess, spawnOAuthMcp } from '@context-gateway/mcp-upstreams';
import { adminClient as sdkAdmin } from '@context-gateway/node';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { AgentAuthorization } from '../support/agent-authorization.js';
import { allowOnConsentPage, browserUrl, launchBrowser } from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// A remote MCP server with its own authorization server (tools/mcp-upstreams oauth-mcp, its
// own process: oidc-provider with resource indicators; the server takes only JWTs its AS
// signed for its own URL). The operator registers it with `auth: "mcp_oauth"`; the gateway
// discovers its authorization server and registers itself there. An agent holding a person's
// access token calls a tool with the official SDK client, gets the connect elicitation, the
// person connects in Chromium (our consent page signed with their passkey, then the server's
// own login and consent), and the SDK's retry succeeds with the server's own token — the
// upstream never sees a gateway token.
jest.setTimeout(120_000);

let stack: TestStack;
let upstream: OAuthUpstreamProcess;
let browser: Browser;
let agentAuth: AgentAuthorization;
let callback = '';
let base: string;
let orgId = '';
/** The person's access token (the agent's), from the connect scenario. */
let nora = '';

beforeAll(async () => {
  upstream = await spawnOAuthMcp();
  stack = await startTestStack('mcp-oauth', {
    OPERATOR_TOKEN,
    SYNC_INTERVAL_MS: '3600000',
    MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
    MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
  });
  agentAuth = await AgentAuthorization.start();
  callback = agentAuth.callback;
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();
  const admin = adminClient(base);
  const org = await admin.createOrganization('Notes Org');
  orgId = org.id;
  const ok = async (res: Promise<{ status: number; body: unknown }>) => expect((await res).status).toBe(200);
  await ok(admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['notes'] }));
  const app = await admin.createApplication(org.id, {
    name: 'Notes-Bot',
    callbackUrls: [callback],
    integrations: ['notes'],
    scopes: ['notes:tools'],
  });
  await ok(
    admin.call('PUT', `/v1/admin/organizations/${org.id}/applications/${app.id}/oauth-client`, {
      tokenEndpointAuthMethod: 'none',
    }),
  );
  await agentAuth.discover(base, app.clientId);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await upstream?.stop();
  await agentAuth?.close();
}, 60_000);

/** A new person signs up with a passkey inside the authorization; the agent gets their access token. Their browser stays signed in. */
async function personToken(name: string): Promise<{ accessToken: string; context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const accessToken = await agentAuth.signUpAndAuthorize(page, name, 'notes:tools');
  return { accessToken, context, page };
}

const claims = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

describe('a remote MCP server with its own authorization server', () => {
  it('is registered with discovery and dynamic registration', async () => {
    const registered = await sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN }).mcpServers.put(orgId, 'notes', {
      url: upstream.url,
      auth: 'mcp_oauth',
    });
    expect(registered).toMatchObject({
      integration: 'notes',
      auth: 'mcp_oauth',
      oauth: {
        resource: upstream.url,
        issuer: upstream.issuer,
        clientSource: 'dynamic_registration',
        scopes: ['notes:read', 'notes:write'],
        // Its own redirect URI (the one its dynamic registration named), not the shared callback.
        redirectUri: expect.stringMatching(/\/v1\/connect\/mcp\/callback\/[A-Za-z0-9_-]{22}$/),
      },
    });
    // Its Client ID Metadata Document lists that one redirect URI, under its own URL (the client id).
    const key = registered.oauth?.redirectUri.split('/').at(-1) ?? '';
    const documentUrl = new URL(`/v1/connect/client-metadata/${key}.json`, base).href;
    const document = (await (await fetch(documentUrl)).json()) as Record<string, unknown>;
    expect(document).toMatchObject({
      // Both under the gateway's public address.
      client_id: new URL(`/v1/connect/client-metadata/${key}.json`, registered.oauth?.redirectUri).href,
      redirect_uris: [registered.oauth?.redirectUri],
      token_endpoint_auth_method: 'none',
    });
    // The same server under a catalog integration's key is refused with the reason.
    const refused = await adminClient(base).call('PUT', `/v1/admin/organizations/${orgId}/mcp-servers/github`, {
      url: upstream.url,
      auth: 'mcp_oauth',
    });
    expect(refused.status).toBe(422);
  });

  it("the agent's call elicits the connect link; the person connects at the server's own AS; the retry succeeds", async () => {
    const person = await personToken('Nora Notes');
    const elicited: string[] = [];
    const agent = new Client(
      { name: 'e2e-notes-agent', version: '1.0.0' },
      { versionNegotiation: { mode: 'auto' }, capabilities: { elicitation: { url: {} } } },
    );
    agent.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode: string; url: string };
      expect(params.mode).toBe('url');
      elicited.push(params.url);
      // The person, in their browser: our consent page (Allow, signed with their passkey)…
      await person.page.goto(params.url);
      await allowOnConsentPage(person.page);
      // …then the MCP server's own authorization server: its login and its consent.
      expect(new URL(person.page.url()).origin).toBe(upstream.issuer);
      await person.page.fill('input[name=login]', 'nora');
      await person.page.fill('input[name=password]', 'any');
      await Promise.all([person.page.waitForEvent('load'), person.page.click('button[type=submit]')]);
      await Promise.all([person.page.waitForURL(`${callback}**`), person.page.click('button[type=submit]')]);
      expect(new URL(person.page.url()).searchParams.get('connectionId')).toBeTruthy();
      return { action: 'accept' as const };
    });
    await agent.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', base), {
        authProvider: { token: () => Promise.resolve(person.accessToken) },
      }),
    );
    const result = await agent.callTool({ name: 'notes.whoami', arguments: {} });
    expect(elicited).toHaveLength(1);
    expect(new URL(elicited[0] ?? '').pathname).toMatch(/^\/v1\/connect\//);
    expect(result.structuredContent).toEqual({ subject: 'nora', audience: upstream.url });
    // Listed now, and callable again without the person.
    expect((await agent.listTools()).tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['notes.whoami', 'notes.add_note', 'notes.list_notes']),
    );
    await agent.callTool({ name: 'notes.add_note', arguments: { text: 'from the agent' } });
    expect((await agent.callTool({ name: 'notes.list_notes', arguments: {} })).structuredContent).toEqual({
      notes: ['from the agent'],
    });
    await agent.close();
    await person.context.close();

    // The upstream saw only tokens its own AS issued for it — never the agent's gateway token.
    const seen = await upstream.seenAuthorizations();
    expect(seen.some((h) => h !== null)).toBe(true);
    for (const header of seen) {
      if (header === null) continue;
      expect(header).not.toContain(person.accessToken);
      expect(claims(header.replace(/^Bearer /, ''))).toMatchObject({ iss: upstream.issuer, aud: upstream.url });
    }
    nora = person.accessToken;
  });

  it('a token the server stops taking is refreshed once, however many calls it refused', async () => {
    const agent = new Client({ name: 'e2e-notes-agent-refused', version: '1.0.0' });
    await agent.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', base), {
        authProvider: { token: () => Promise.resolve(nora) },
      }),
    );
    const whoami = () =>
      agent.callTool({ name: 'notes.whoami', arguments: {} }).then(
        (result) => (result.structuredContent as { subject?: string }).subject ?? 'no subject',
        (error: unknown) => (error as { data?: { code?: string } }).data?.code ?? String(error),
      );
    expect(await whoami()).toBe('nora');
    const refreshes = async () =>
      (await upstream.tokenRequests()).filter((request) => request.grantType === 'refresh_token').length;
    const refreshesBefore = await refreshes();

    // The server stops taking the token the gateway holds (revoked at its AS). Calls already
    // under way with it are refused; each refusal tells the broker which credential it was,
    // so the refresh token is spent once for all of them.
    await upstream.revokeSeenTokens();
    const outcomes = await Promise.all(Array.from({ length: 6 }, whoami));
    expect(outcomes.filter((outcome) => outcome !== 'nora' && outcome !== 'upstream_unauthorized')).toEqual([]);
    const refusals = outcomes.filter((outcome) => outcome === 'upstream_unauthorized').length;
    expect(refusals).toBeGreaterThanOrEqual(1);

    // The client's retry goes out with the refreshed token and succeeds.
    await waitFor('a call with the refreshed token', async () => ((await whoami()) === 'nora' ? true : undefined));
    // Every refusal's report has reached the broker by now or is on its way; give the late
    // ones time to land, then count: one refresh, whatever the number of refusals.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect({ refusals, refreshes: (await refreshes()) - refreshesBefore }).toEqual({ refusals, refreshes: 1 });
    const resources = (await upstream.tokenRequests()).slice(-1).map((request) => request.resource);
    expect(resources).toEqual([upstream.url]);
    await agent.close();
  });

  it('auth "none" sends no credential at all; a client for another auth is refused', async () => {
    const admin = adminClient(base);
    const path = `/v1/admin/organizations/${orgId}/mcp-servers/notes`;
    const mixed = await admin.call('PUT', path, {
      url: upstream.url,
      auth: 'connection',
      oauthClient: { clientId: 'x' },
    });
    expect(mixed.status).toBe(422);
    expect((mixed.body as { code: string }).code).toBe('validation_failed');
    const none = await admin.call('PUT', path, { url: upstream.url, auth: 'none' });
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({ auth: 'none', oauth: null });

    const agent = new Client({ name: 'e2e-notes-agent-none', version: '1.0.0' });
    await agent.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', base), {
        authProvider: { token: () => Promise.resolve(nora) },
      }),
    );
    // This server wants its own token, so without one it refuses: the agent hears it, no connect link.
    const refused = await waitFor('the new registration', async () =>
      agent.callTool({ name: 'notes.whoami', arguments: {} }).then(
        () => undefined,
        (error: unknown) => {
          const data = (error as { data?: { code?: string } }).data;
          return data?.code === 'upstream_unauthorized' ? data : undefined;
        },
      ),
    );
    expect(refused.code).toBe('upstream_unauthorized');
    // The registration is in force now: one more call, and what the server saw of it alone.
    const before = (await upstream.seenAuthorizations()).length;
    const again = await agent.callTool({ name: 'notes.whoami', arguments: {} }).then(
      () => undefined,
      (error: unknown) => (error as { data?: { code?: string } }).data?.code,
    );
    expect(again).toBe('upstream_unauthorized');
    const after = (await upstream.seenAuthorizations()).slice(before);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((h) => h === null)).toBe(true);
    await agent.close();
  });
});
