import { spawnGithubMcp, type UpstreamProcess } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { adminClient as sdkAdmin } from '@context-gateway/node';
import { AuditAction, AuditOutcome, AuditPhase } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Client, type ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Browser } from 'playwright-core';

import { AgentAuthorization } from '../support/agent-authorization.js';
import { recentAuditEvents } from '../support/audit-stream.js';
import { browserUrl, launchBrowser } from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { mcpListener } from '../support/mcp-listener.js';
import { addSoftPasskey } from '../support/soft-passkey.mjs';
import { connectSourceAccount, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Named virtual servers end to end: an org defines `triage` (two of its GitHub MCP server's
// tools); an agent holding a person's access token for the gateway reaches it at
// /mcp/v/triage with the official SDK client on both revisions, sees only the selection
// (as far as policy allows), and a tool outside it is refused exactly like an unknown one.
const CLIENT_ID = 'cg-e2e-mcp-vs';
const CLIENT_SECRET = 'cg-e2e-mcp-vs-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:tools'];
jest.setTimeout(120_000);

let stack: TestStack;
let sim: RunningSimulator;
let upstream: UpstreamProcess;
let nc: NatsConnection;
let browser: Browser;
let agentAuth: AgentAuthorization;
let callback = '';
let base: string;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };
let otherOrg: string;
let accessToken = '';
let userId = '';
const admin = () => adminClient(base);
const sdk = () => sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  upstream = await spawnGithubMcp(sim.url);
  stack = await startTestStack('mcp-virtual', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    SYNC_INTERVAL_MS: '3600000',
    MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
    MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
    MCP_TOOLS_TTL_MS: '1000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await sim.control.createAccount({ login: 'octo-triage', counts: { repos: 2, starred: 0, issues: 0 } });
  agentAuth = await AgentAuthorization.start();
  callback = agentAuth.callback;
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();

  const org = await admin().createOrganization('Virtual Org');
  await admin().call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] });
  const created = await admin().createApplication(org.id, {
    name: 'Triage-Bot',
    callbackUrls: [callback],
    integrations: ['github'],
    scopes: SCOPES,
  });
  await admin().call('PUT', `/v1/admin/organizations/${org.id}/applications/${created.id}/oauth-client`, {
    tokenEndpointAuthMethod: 'none',
  });
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: callback };
  await sdk().mcpServers.put(org.id, 'github', { url: upstream.url });
  // Another org, with a virtual server of its own under a name this org does not use.
  otherOrg = (await admin().createOrganization('Other Org')).id;
  await sdk().mcpServers.put(otherOrg, 'github', { url: upstream.url });
  await sdk().mcpVirtualServers.put(otherOrg, 'secret', { integrations: ['github'] });
  nc = await connect(stack.natsOptions());
  await waitForBrokerToKnowApp(new RpcClient(nc), app, 'github', SCOPES);

  // A person signs up with a passkey inside the authorization and consents; the agent gets
  // their access token for the gateway (the one resource), then the person connects GitHub.
  await agentAuth.discover(base, created.clientId);
  const context = await browser.newContext();
  const page = await context.newPage();
  accessToken = await agentAuth.signUpAndAuthorize(page, 'Tess Triage', 'github:tools');
  userId = await agentAuth.subject(accessToken);
  const sessionToken = (await context.cookies()).find((c) => c.name === '__Host-cg_session')?.value ?? '';
  await context.close();
  const person = await addSoftPasskey(base, { userId, sessionToken });
  await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-triage', person);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await nc?.close();
  await stack?.stop();
  await upstream?.stop();
  await sim?.stop();
  await agentAuth?.close();
}, 60_000);

/** The official SDK client at a virtual server: `modern` negotiates 2026-07-28, `legacy` speaks 2025-11-25 only. */
async function agent(path: string, era: 'modern' | 'legacy'): Promise<Client> {
  const client = new Client(
    { name: `e2e-vs-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(path, base), {
      authProvider: { token: () => Promise.resolve(accessToken) },
    }),
  );
  return client;
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (error: unknown) => error as ProtocolError,
  );

const post = (path: string, token?: string) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });

describe('named virtual servers', () => {
  it('are defined through the admin API, with coded refusals', async () => {
    const path = `/v1/admin/organizations/${app.orgId}/mcp-virtual-servers`;
    const stored = await sdk().mcpVirtualServers.put(app.orgId, 'triage', {
      description: 'Issue triage',
      tools: ['github:list_repos', 'github:create_issue'],
    });
    expect(stored).toMatchObject({
      name: 'triage',
      integrations: [],
      tools: ['github:create_issue', 'github:list_repos'],
      url: `${base.replace(/\/+$/, '')}/mcp/v/triage`,
    });
    for (const [body, code] of [
      [{ integrations: ['jira'] }, 'mcp_server_not_registered'],
      [{ tools: ['jira:create_issue'] }, 'mcp_server_not_registered'],
      [{ tools: ['github:list_repos'], extra: true }, 'unknown_field'],
      [{ tools: ['list_repos'] }, 'validation_failed'],
      [{}, 'validation_failed'],
    ] as const) {
      const res = await admin().call('PUT', `${path}/bad`, body);
      expect([res.status, (res.body as { code?: string }).code]).toEqual([422, code]);
    }
    expect((await admin().call('PUT', `${path}/Bad.Name`, { integrations: ['github'] })).status).toBe(422);
    const missing = await admin().call('GET', `${path}/nope`);
    expect([missing.status, (missing.body as { code?: string }).code]).toEqual([404, 'mcp_virtual_server_not_found']);
    expect((await sdk().mcpVirtualServers.list(app.orgId)).servers.map((s) => s.name)).toEqual(['triage']);
  });

  it('answers 401 naming the gateway as the protected resource, which covers the virtual server', async () => {
    const res = await post('/mcp/v/triage');
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1] ?? '';
    const metadata = (await (await fetch(metadataUrl)).json()) as { resource: string };
    expect(metadata.resource).toBe(base.replace(/\/+$/, ''));
    // What an MCP client checks before asking for a token with that resource (same origin, path prefix).
    const endpoint = new URL('/mcp/v/triage', base);
    expect(endpoint.origin).toBe(new URL(metadata.resource).origin);
    expect(endpoint.pathname.startsWith(new URL(metadata.resource).pathname)).toBe(true);
  });

  it('lists only its selection on both revisions and refuses a tool outside it like an unknown one', async () => {
    for (const era of ['modern', 'legacy'] as const) {
      const client = await agent('/mcp/v/triage', era);
      const names = await waitFor(`the selection (${era})`, async () => {
        const listed = (await client.listTools()).tools.map((t) => t.name).sort();
        return listed.length === 2 ? listed : undefined;
      });
      expect(names).toEqual(['github.create_issue', 'github.list_repos']);
      const result = await client.callTool({ name: 'github.list_repos', arguments: { limit: 10 } });
      expect(result.isError).toBeFalsy();
      const outside = await refusal(client.callTool({ name: 'github.delete_repo', arguments: { repo: 'x/y' } }));
      const unknown = await refusal(client.callTool({ name: 'github.no_such_tool', arguments: {} }));
      expect(outside?.code).toBe(-32602);
      expect(outside?.message).toBe(unknown?.message.replace('github.no_such_tool', 'github.delete_repo'));
      // Single tools bring no resources or prompts of their integration.
      expect((await client.listResources()).resources).toEqual([]);
      await client.close();
    }
    // The whole endpoint still offers the tool the virtual server leaves out.
    const whole = await agent('/mcp', 'modern');
    expect((await whole.listTools()).tools.map((t) => t.name)).toContain('github.delete_repo');
    await whole.close();

    const events = (await recentAuditEvents(nc, 60)).filter(
      (e) => e.action === AuditAction.CAPABILITY_INVOCATION && e.capability === 'github:list_repos',
    );
    const outcome = events.find((e) => e.phase === AuditPhase.OUTCOME && e.outcome === AuditOutcome.ALLOWED);
    expect(outcome).toMatchObject({ userId, mcpVirtualServer: 'triage' });
    expect(events.find((e) => e.eventId === outcome?.intentEventId)).toMatchObject({ mcpVirtualServer: 'triage' });
    expect(
      (await recentAuditEvents(nc, 60)).some((e) => e.capability === 'github:delete_repo' && e.mcpVirtualServer),
    ).toBe(false);
  });

  it('shows the selection as far as policy allows; a change is in force on the next request', async () => {
    const client = await agent('/mcp/v/triage', 'modern');
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:create_issue',
    });
    expect(rule.status).toBe(201);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['github.list_repos']);
    const denied = await refusal(
      client.callTool({ name: 'github.create_issue', arguments: { repo: 'a/b', title: 't' } }),
    );
    expect(denied?.code).toBe(-32003);

    // Replaced by the whole integration: its other tools, resources and prompts appear at once.
    await sdk().mcpVirtualServers.put(app.orgId, 'triage', { integrations: ['github'] });
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('github.delete_repo');
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['github+github://user']);
    await client.close();

    await sdk().mcpVirtualServers.remove(app.orgId, 'triage');
    const gone = await post('/mcp/v/triage', accessToken);
    expect([gone.status, ((await gone.json()) as { code: string }).code]).toEqual([
      404,
      'mcp_virtual_server_not_found',
    ]);
  });

  it("finds no other org's virtual server and no unknown name", async () => {
    for (const path of ['/mcp/v/secret', '/mcp/v/nope', '/mcp/v/Not%20A%20Name']) {
      const res = await post(path, accessToken);
      expect([path, res.status, ((await res.json()) as { code: string }).code]).toEqual([
        path,
        404,
        'mcp_virtual_server_not_found',
      ]);
    }
    const foreign = await fetch(`${base}/mcp/v/secret`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${accessToken}`,
        origin: 'https://evil.example',
      },
      body: '{}',
    });
    expect(foreign.status).toBe(403);
  });

  it('tells agents listening at it, on both revisions, of changes of its own list only, and ends their streams when deleted', async () => {
    const watched = (tools: string[]) => sdk().mcpVirtualServers.put(app.orgId, 'watched', { tools });
    await watched(['github:list_repos', 'github:delete_repo']);
    // Agents of both revisions listening at the virtual server, and one at the whole endpoint.
    const listeners = await Promise.all(
      (['modern', 'legacy'] as const).map((era) => mcpListener(new URL('/mcp/v/watched', base), accessToken, era)),
    );
    const whole = await mcpListener(new URL('/mcp', base), accessToken, 'modern');
    const everyoneTold = (n: number) => Promise.all(listeners.map((l) => l.toldTimes(n)));
    const counts = () => listeners.map((l) => l.count());
    for (const l of listeners) expect((await l.names()).sort()).toEqual(['github.delete_repo', 'github.list_repos']);

    // The upstream adds a tool outside the selection: the whole endpoint is told, the virtual server is not.
    await upstream.offerSearchCode(true);
    await whole.toldTimes(1);
    // A rule on a selected tool: told there (and at /mcp); lifting it, told again.
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:delete_repo',
    });
    expect(rule.status).toBe(201);
    await everyoneTold(1);
    for (const l of listeners) expect(await l.names()).toEqual(['github.list_repos']);
    const ruleId = (rule.body as { rule: { id: string } }).rule.id;
    const lifted = await admin().call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${ruleId}`);
    expect(lifted.status).toBeLessThan(300);
    await everyoneTold(2);
    await whole.toldTimes(3);
    // Had the unselected tool been told at the virtual server, each would have had three by now.
    expect(counts()).toEqual([2, 2]);
    for (const l of listeners) expect(await l.names()).not.toContain('github.search_code');

    // Replaced with a selection naming the upstream's new tool: its list moved, so it is told.
    await watched(['github:list_repos', 'github:search_code']);
    await everyoneTold(3);
    for (const l of listeners) expect((await l.names()).sort()).toEqual(['github.list_repos', 'github.search_code']);
    // Now selected, the tool's withdrawal and return upstream are told there.
    await upstream.offerSearchCode(false);
    await everyoneTold(4);
    for (const l of listeners) expect(await l.names()).toEqual(['github.list_repos']);
    await upstream.offerSearchCode(true);
    await everyoneTold(5);
    for (const l of listeners) expect(await l.names()).toContain('github.search_code');

    // Deleted: told, then each stream ends (2026-07-28 with its final result); asking again is 404.
    await sdk().mcpVirtualServers.remove(app.orgId, 'watched');
    await everyoneTold(6);
    expect(await Promise.all(listeners.map((l) => l.ended))).toEqual(['graceful', 'ended']);
    for (const l of listeners) {
      const refused = await refusal(l.client.listTools());
      expect(refused).toBeDefined();
      await l.client.close();
    }
    const gone = await post('/mcp/v/watched', accessToken);
    expect(gone.status).toBe(404);
    await upstream.offerSearchCode(false);
    await whole.client.close();
  });
});
