import { spawnGithubMcp, type UpstreamProcess } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { adminClient as sdkAdmin } from '@context-gateway/node';
import { AuditAction, AuditOutcome, AuditPhase } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { AgentAuthorization } from '../support/agent-authorization.js';
import { recentAuditEvents } from '../support/audit-stream.js';
import { browserUrl, launchBrowser, sessionCookie } from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { type McpListener, mcpListener } from '../support/mcp-listener.js';
import { addSoftPasskey, type SignedInPerson } from '../support/soft-passkey.mjs';
import { connectSourceAccount, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Gateway mode end to end: an org registers a GitHub-shaped remote MCP server (its own
// process, checking every bearer token against the GitHub simulator); an agent holding a
// person's access token (authorization code + PKCE, passkey sign-in in Chromium) lists and
// calls its tools at /mcp with the official SDK client, on both protocol revisions. Policy
// decides every call, the person's own GitHub token goes upstream (never the agent's), and
// every call has its intent and outcome in the audit trail.
const CLIENT_ID = 'cg-e2e-mcp-github';
const CLIENT_SECRET = 'cg-e2e-mcp-github-secret-0123456789';
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
const admin = () => adminClient(base);

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  upstream = await spawnGithubMcp(sim.url, { faultyTools: true });
  stack = await startTestStack('mcp-gateway', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    SYNC_INTERVAL_MS: '3600000',
    MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
    MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
    // Short enough for the slow-answer test to wait it out, long enough for a loaded machine's
    // upstream to start streaming its 20 MB answer (with 2 s it timed out first under load).
    MCP_UPSTREAM_TIMEOUT_MS: '6000',
    MCP_TOOLS_TTL_MS: '1000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  for (const login of ['octo-agent', 'octo-late', 'octo-approver', 'octo-narrow']) {
    await sim.control.createAccount({ login, counts: { repos: 3, starred: 0, issues: 0 } });
  }
  agentAuth = await AgentAuthorization.start();
  callback = agentAuth.callback;
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();

  const org = await admin().createOrganization('MCP Org');
  const ok = async (res: Promise<{ status: number; body: unknown }>) => expect((await res).status).toBe(200);
  await ok(admin().call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] }));
  const created = await admin().createApplication(org.id, {
    name: 'PR-Bot',
    callbackUrls: [callback],
    integrations: ['github'],
    scopes: SCOPES,
  });
  await ok(
    admin().call('PUT', `/v1/admin/organizations/${org.id}/applications/${created.id}/oauth-client`, {
      tokenEndpointAuthMethod: 'none',
    }),
  );
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: callback };
  // With the SDK, as `pnpm cg mcp-server set` does: the upstream needs a person's token, so no tools yet.
  const registered = await sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN }).mcpServers.put(org.id, 'github', {
    url: upstream.url,
    resourceArguments: { create_issue: 'repo' },
  });
  expect(registered).toMatchObject({ integration: 'github', url: upstream.url, tools: [], toolsReadAt: null });
  nc = await connect(stack.natsOptions());
  await waitForBrokerToKnowApp(new RpcClient(nc), app, 'github', SCOPES);
  await agentAuth.discover(base, created.clientId);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await nc?.close();
  await stack?.stop();
  await upstream?.stop();
  await sim?.stop();
  await agentAuth?.close();
}, 60_000);

/**
 * A new person signs up with a passkey inside the authorization and consents to `scope`; the
 * agent gets their access token. `keep`: their browser stays open (signed in, the passkey in
 * its virtual authenticator) for pages they answer later.
 */
async function personToken(
  name: string,
  keep = false,
  scope = 'github:tools',
): Promise<SignedInPerson & { accessToken: string; browser?: { context: BrowserContext; page: Page } }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const accessToken = await agentAuth.signUpAndAuthorize(page, name, scope);
  const userId = await agentAuth.subject(accessToken);
  const sessionToken = await sessionCookie(context);
  if (!keep) await context.close();
  // A second passkey, in software, signs the person's consents in the connect flow.
  const person = await addSoftPasskey(base, { userId, sessionToken });
  if (keep) {
    // Adding the passkey opened a new session: the browser carries that one from now on.
    const cookie = (await context.cookies()).find((c) => c.name === '__Host-cg_session');
    await context.addCookies([{ ...cookie!, value: person.sessionToken }]);
    return { ...person, accessToken, browser: { context, page } };
  }
  return { ...person, accessToken };
}

/** The official SDK client at /mcp: `modern` negotiates 2026-07-28, `legacy` speaks 2025-11-25 only. */
async function agent(token: string, era: 'modern' | 'legacy'): Promise<Client> {
  const client = new Client(
    { name: `e2e-agent-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', base), { authProvider: { token: () => Promise.resolve(token) } }),
  );
  return client;
}

const text = (result: unknown) =>
  JSON.parse(((result as { content: { text: string }[] }).content[0] ?? { text: 'null' }).text) as Record<
    string,
    unknown
  >;

/** What a test put in the shared org, undone after it whether it passed or not. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

describe('gateway mode at /mcp', () => {
  let alice: Awaited<ReturnType<typeof personToken>>;

  it('answers 401 with the protected resource metadata to a caller without a token', async () => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it("lists and calls the person's GitHub tools on both revisions; only their own GitHub token goes upstream", async () => {
    alice = await personToken('Alice Agent');
    const aliceConnection = (await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-agent', alice))
      .connectionId;
    for (const era of ['modern', 'legacy'] as const) {
      const client = await agent(alice.accessToken, era);
      const names = await waitFor(`the tools (${era})`, async () => {
        const listed = (await client.listTools()).tools.map((t) => t.name).sort();
        return listed.includes('github.list_repos') && listed.includes('github.delete_repo') ? listed : undefined;
      });
      expect(names).toEqual([
        'github.create_issue',
        'github.delete_repo',
        'github.large_result',
        'github.list_repos',
        'github.slow_echo',
      ]);
      const result = await client.callTool({ name: 'github.list_repos', arguments: { limit: 10 } });
      expect(result.isError).toBeFalsy();
      expect((text(result).repos as string[]).length).toBe(3);
      expect((text(result).repos as string[]).every((r) => r.startsWith('octo-agent/'))).toBe(true);
      await client.close();
    }
    // The admin API shows what was read: each tool as the capability policy rules name.
    const { servers } = await sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN }).mcpServers.list(app.orgId);
    expect(servers[0]?.toolsReadAt).not.toBeNull();
    expect(servers[0]?.tools.find((t) => t.name === 'delete_repo')).toEqual({
      name: 'delete_repo',
      capability: 'github:delete_repo',
      mcpName: 'github.delete_repo',
      description: 'Delete a repository. This cannot be undone.',
      readOnly: false,
      destructive: true,
    });
    const seen = await upstream.seenAuthorizations();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.some((h) => h?.includes(alice.accessToken))).toBe(false);

    // Intent before, outcome after, naming the capability, the person and the deciding policy.
    const events = (await recentAuditEvents(nc, 60)).filter(
      (e) => e.action === AuditAction.CAPABILITY_INVOCATION && e.capability === 'github:list_repos',
    );
    const outcome = events.find((e) => e.phase === AuditPhase.OUTCOME && e.outcome === AuditOutcome.ALLOWED);
    expect(outcome).toMatchObject({
      userId: alice.userId,
      applicationId: app.appId,
      integration: 'github',
      connectionId: aliceConnection,
    });
    expect(events.find((e) => e.eventId === outcome?.intentEventId)).toMatchObject({ phase: AuditPhase.INTENT });
  });

  it("proxies the server's resources and prompts the same way, named per integration", async () => {
    for (const era of ['modern', 'legacy'] as const) {
      const client = await agent(alice.accessToken, era);
      const { resources } = await client.listResources();
      expect(resources.map((r) => r.uri)).toEqual(['github+github://user']);
      const read = await client.readResource({ uri: 'github+github://user' });
      expect(read.contents[0]).toMatchObject({ uri: 'github+github://user', mimeType: 'application/json' });
      expect(JSON.parse((read.contents[0] as { text: string }).text)).toEqual({ login: 'octo-agent' });
      const { prompts } = await client.listPrompts();
      expect(prompts.map((p) => p.name)).toEqual(['github.review_repo']);
      const prompt = await client.getPrompt({ name: 'github.review_repo', arguments: { repo: 'acme/frontend' } });
      expect(prompt.messages[0]?.content).toEqual({ type: 'text', text: 'Review acme/frontend for octo-agent.' });
      const unknown = await client.readResource({ uri: 'nope://x' }).then(
        () => undefined,
        (error: unknown) => error as ProtocolError,
      );
      expect(unknown?.code).toBe(-32602);
      await client.close();
    }
    const reads = (await recentAuditEvents(nc, 40)).filter(
      (e) => e.operation === 'MCP resources/read' && e.phase === AuditPhase.OUTCOME,
    );
    expect(reads.at(-1)).toMatchObject({ capability: 'github:tools', resource: 'github://user', userId: alice.userId });
  });

  it("holds a destructive call for the person's passkey approval of exactly it; each approval runs one call", async () => {
    const ada = await personToken('Ada Approver', true);
    // The page whose virtual authenticator holds Ada's passkey (she signed up on it).
    const { context, page } = ada.browser!;
    await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-approver', ada);
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'allow',
      capability: 'github:delete_repo',
      approvalRequired: true,
      description: 'Deleting a repository needs the person’s approval',
    });
    expect(rule.status).toBe(201);
    const ruleId = (rule.body as { rule: { id: string } }).rule.id;
    // Explain names the approval it asks for.
    // (policy applies Ada's new grant from the control stream: asked until it has)
    const explained = await waitFor('the grant in policy', async () => {
      const res = await admin().call('POST', '/v1/admin/policy/explain', {
        applicationId: app.appId,
        userId: ada.userId,
        capability: 'github:delete_repo',
      });
      return (res.body as { allowed?: boolean }).allowed ? res.body : undefined;
    });
    expect(explained).toMatchObject({ allowed: true, approval: { layer: 'org', ruleIds: [ruleId] } });

    /** The person opens the approval link, reads the call and approves it with their passkey. */
    const approve = async (url: string, repo: string) => {
      const link = new URL(url);
      expect(link.pathname).toMatch(/^\/v1\/approvals\/[0-9a-f-]{36}$/);
      const response = await page.goto(new URL(link.pathname, base).href);
      expect(response?.headers()['content-security-policy']).toContain("form-action 'self'");
      expect(await page.textContent('#name')).toBe('github.delete_repo');
      expect(await page.textContent('#method')).toBe('tools/call');
      // The server's annotations are shown as its claims.
      expect(await page.textContent('body')).toContain('its own claims');
      expect(await page.textContent('body')).toContain('Destructive');
      expect(JSON.parse((await page.textContent('#arguments')) ?? '')).toEqual({ repo });
      await page.click('#allow');
      await page.getByRole('heading', { name: 'Approved' }).waitFor();
      return link.pathname;
    };
    const deleted = (result: unknown, repo: string) =>
      expect(text(result)).toEqual({ deleted: repo, by: 'octo-approver' });

    // 2026-07-28: the SDK's multi-round-trip driver hands the input request to the agent's
    // URL elicitation handler, which waits for the person, then retries the call by itself.
    const elicited: string[] = [];
    const modern = new Client(
      { name: 'e2e-agent-approvals', version: '1.0.0' },
      { versionNegotiation: { mode: 'auto' }, capabilities: { elicitation: { url: {} } } },
    );
    modern.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode: string; url: string };
      expect(params.mode).toBe('url');
      elicited.push(await approve(params.url, 'octo-approver/old'));
      return { action: 'accept' as const };
    });
    await modern.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', base), {
        authProvider: { token: () => Promise.resolve(ada.accessToken) },
      }),
    );
    await waitFor('the tool', async () =>
      (await modern.listTools()).tools.some((t) => t.name === 'github.delete_repo') ? true : undefined,
    );
    deleted(
      await modern.callTool({ name: 'github.delete_repo', arguments: { repo: 'octo-approver/old' } }),
      'octo-approver/old',
    );
    expect(elicited).toHaveLength(1);
    await modern.close();

    // 2025-11-25: error -32042 with the approval link; the agent retries once the person approved.
    const legacy = await agent(ada.accessToken, 'legacy');
    const held = async (repo: string) => {
      const error = await legacy.callTool({ name: 'github.delete_repo', arguments: { repo } }).then(
        () => undefined,
        (e: unknown) => e as ProtocolError,
      );
      expect(error?.code).toBe(-32042);
      const [request] = (error?.data as { elicitations: { mode: string; url: string }[] }).elicitations;
      expect(request?.mode).toBe('url');
      return request?.url ?? '';
    };
    const first = await held('octo-approver/tmp');
    // Not approved yet: the retry is held again, on the same request.
    expect(await held('octo-approver/tmp')).toBe(first);
    const approved = await approve(first, 'octo-approver/tmp');
    deleted(
      await legacy.callTool({ name: 'github.delete_repo', arguments: { repo: 'octo-approver/tmp' } }),
      'octo-approver/tmp',
    );
    // Single use: the same call again needs a new approval.
    const again = await held('octo-approver/tmp');
    expect(new URL(again).pathname).not.toBe(approved);
    // Other arguments are another call: an approval of these covers nothing else.
    const other = await held('octo-approver/keep');
    expect(new URL(other).pathname).not.toBe(new URL(again).pathname);
    // Declined: the retry fails once with a clear error; nothing ran.
    await page.goto(new URL(new URL(other).pathname, base).href);
    await page.click('button[value=deny]');
    await page.getByRole('heading', { name: 'Declined' }).waitFor();
    const declined = await legacy
      .callTool({ name: 'github.delete_repo', arguments: { repo: 'octo-approver/keep' } })
      .then(
        () => undefined,
        (e: unknown) => e as ProtocolError,
      );
    expect(declined?.data).toMatchObject({ code: 'approval_declined' });
    // A replayed approval page answer changes nothing.
    await page.goto(new URL(approved, base).href);
    expect(await page.textContent('body')).toContain('approval_already_decided');

    // A resource-scoped approval on the resources' capability: a read names no resource, so it
    // is held (not let through), and listings, which cannot wait for an approval, show nothing.
    const reads = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'allow',
      capability: 'github:tools',
      resources: ['secret/*'],
      approvalRequired: true,
    });
    expect(reads.status).toBe(201);
    const readHeld = await legacy.readResource({ uri: 'github+github://user' }).then(
      () => undefined,
      (e: unknown) => e as ProtocolError,
    );
    expect(readHeld?.code).toBe(-32042);
    const readUrl = (readHeld?.data as { elicitations: { url: string }[] }).elicitations[0]?.url ?? '';
    await page.goto(new URL(new URL(readUrl).pathname, base).href);
    expect(await page.textContent('#method')).toBe('resources/read');
    expect(await page.textContent('#name')).toBe('github+github://user');
    expect((await legacy.listResources()).resources).toEqual([]);
    await admin().call(
      'DELETE',
      `/v1/admin/organizations/${app.orgId}/policy/rules/${(reads.body as { rule: { id: string } }).rule.id}`,
    );
    await legacy.close();

    // Every call has intent and outcome; held ones name the request, the approved ones the approval they spent.
    const trail = (await recentAuditEvents(nc, 160)).filter(
      (e) => e.capability === 'github:delete_repo' && e.userId === ada.userId,
    );
    const events = trail.filter((e) => e.action === AuditAction.CAPABILITY_INVOCATION);
    const outcomes = events.filter((e) => e.phase === AuditPhase.OUTCOME);
    // Each of Ada's answers on the page is a consent by her, naming the request (and the passkey that signed).
    const answers = trail.filter((e) => e.action === AuditAction.CONSENT && e.phase === AuditPhase.OUTCOME);
    expect(answers.map((e) => `/v1/approvals/${e.approvalId}`).sort()).toEqual(
      [elicited[0], approved, new URL(other).pathname].sort(),
    );
    for (const answer of answers) {
      expect(answer).toMatchObject({ actorId: ada.userId });
      if (answer.outcome === AuditOutcome.ALLOWED) expect(answer.resource).toMatch(/^passkey:[A-Za-z0-9_-]+$/);
      else expect(answer).toMatchObject({ outcome: AuditOutcome.DENIED, errorCode: 'approval_declined' });
    }
    for (const outcome of outcomes)
      expect(events.find((e) => e.eventId === outcome.intentEventId)).toMatchObject({ phase: AuditPhase.INTENT });
    const ran = outcomes.filter((e) => e.outcome === AuditOutcome.ALLOWED);
    expect(ran.map((e) => `/v1/approvals/${e.approvalId}`).sort()).toEqual([elicited[0], approved].sort());
    expect(outcomes.filter((e) => e.errorCode === 'approval_required').map((e) => e.approvalId)).toContain(
      approved.split('/').at(-1),
    );
    expect(outcomes.find((e) => e.errorCode === 'approval_declined')?.approvalId).toBe(
      new URL(other).pathname.split('/').at(-1),
    );
    for (const e of ran) expect(e.policy?.matchedRuleIds).toContain(ruleId);

    await admin().call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${ruleId}`);
    await context.close();
  });

  it('refuses what policy denies, naming the layer, from the very next call; resource rules read the arguments', async () => {
    const client = await agent(alice.accessToken, 'modern');
    const orgRule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:delete_repo',
      description: 'Nobody deletes repositories through agents',
    });
    expect(orgRule.status).toBe(201);
    const refused = await client.callTool({ name: 'github.delete_repo', arguments: { repo: 'octo-agent/x' } }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ProtocolError);
    expect((refused as ProtocolError).code).toBe(-32003);
    expect((refused as ProtocolError).data).toMatchObject({ code: 'policy_denied', decidedBy: 'org' });
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('github.delete_repo');

    const appRule = await admin().call(
      'POST',
      `/v1/admin/organizations/${app.orgId}/applications/${app.appId}/policy/rules`,
      { effect: 'deny', capability: 'github:create_issue', resources: ['acme/secret*'] },
    );
    expect(appRule.status).toBe(201);

    // Credential-only mode can do what any tool can (the grant holds github:tools): a tool
    // denied by the org refuses the raw GitHub token too.
    const key = await admin().issueApiKey(app.appId);
    const credential = await fetch(`${base}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ integration: 'github', userId: alice.userId }),
    });
    expect(credential.status).toBe(403);
    expect(await credential.json()).toMatchObject({ code: 'policy_denied' });
    const secret = await client
      .callTool({ name: 'github.create_issue', arguments: { repo: 'acme/secret-plans', title: 'hi' } })
      .then(
        () => undefined,
        (error: unknown) => error as ProtocolError,
      );
    expect(secret?.data).toMatchObject({ code: 'policy_denied', decidedBy: 'application' });
    const open = await client.callTool({
      name: 'github.create_issue',
      arguments: { repo: 'acme/frontend', title: 'hi' },
    });
    expect(text(open)).toMatchObject({ repo: 'acme/frontend', author: 'octo-agent' });
    await client.close();
  });

  it('turns a slow or oversized upstream answer into a clear MCP error, audited as an error', async () => {
    const client = await agent(alice.accessToken, 'modern');
    const failure = (name: string, args: Record<string, unknown>) =>
      client.callTool({ name, arguments: args }).then(
        () => undefined,
        (error: unknown) => error as ProtocolError,
      );
    const slow = await failure('github.slow_echo', { text: 'hi', ms: 12_000 });
    expect({ code: slow?.code, data: slow?.data }).toEqual({ code: -32010, data: { code: 'upstream_timeout' } });
    // 20 MB against the default 4 MiB limit: refused while it streams, never buffered whole.
    const large = await failure('github.large_result', { mb: 20 });
    expect({ code: large?.code, data: large?.data }).toEqual({ code: -32010, data: { code: 'upstream_too_large' } });
    const fast = await client.callTool({ name: 'github.slow_echo', arguments: { text: 'hi', ms: 0 } });
    expect(text(fast)).toEqual({ text: 'hi' });
    const outcomes = (await recentAuditEvents(nc, 40)).filter(
      (e) => e.capability === 'github:large_result' && e.phase === AuditPhase.OUTCOME,
    );
    expect(outcomes.at(-1)).toMatchObject({ outcome: AuditOutcome.ERROR, errorCode: 'upstream_too_large' });
    await client.close();
  });

  it("follows the server's tool list: a new tool appears without a deploy, a withdrawn one is refused", async () => {
    const client = await agent(alice.accessToken, 'legacy');
    await upstream.offerSearchCode(true);
    await waitFor('the new tool', async () =>
      (await client.listTools()).tools.some((t) => t.name === 'github.search_code') ? true : undefined,
    );
    expect(text(await client.callTool({ name: 'github.search_code', arguments: { query: 'x' } }))).toEqual({
      query: 'x',
      matches: [],
    });
    await upstream.offerSearchCode(false);
    await waitFor('the tool to go', async () =>
      (await client.listTools()).tools.some((t) => t.name === 'github.search_code') ? undefined : true,
    );
    // Still in the org's catalog for a while (another person may be offered it), but the server refuses it.
    const gone = await client.callTool({ name: 'github.search_code', arguments: { query: 'x' } }).then(
      () => undefined,
      (error: unknown) => error as ProtocolError,
    );
    expect(gone?.code).toBe(-32602);
    await client.close();
  });

  it('tells agents listening on either revision when what they may see changes: upstream, or by a rule', async () => {
    // One agent per revision, each holding its stream open: subscriptions/listen (2026-07-28),
    // the GET stream the SDK opens after initialize (2025-11-25).
    const listeners = await Promise.all(
      (['modern', 'legacy'] as const).map((era) => mcpListener(new URL('/mcp', base), alice.accessToken, era)),
    );
    const everyoneTold = (n: number) => Promise.all(listeners.map((l) => l.toldTimes(n)));
    for (const l of listeners) expect(await l.names()).not.toContain('github.search_code');

    // The upstream adds a tool: told, listed, callable.
    const callsBefore = await upstream.toolCalls('search_code');
    await upstream.offerSearchCode(true);
    await everyoneTold(1);
    for (const l of listeners) {
      expect(await l.names()).toContain('github.search_code');
      expect(text(await l.client.callTool({ name: 'github.search_code', arguments: { query: 'y' } }))).toEqual({
        query: 'y',
        matches: [],
      });
    }
    // Each of those calls reached the upstream as a `tools/call search_code` (so the count
    // below would see one that got through).
    expect(await upstream.toolCalls('search_code')).toBe(callsBefore + listeners.length);

    // The upstream withdraws it: told, unlisted, and refused by the gateway itself at once —
    // nothing more reaches the upstream for the call (it stays in the org's catalog a while).
    await upstream.offerSearchCode(false);
    await everyoneTold(2);
    for (const l of listeners) {
      expect(await l.names()).not.toContain('github.search_code');
      const before = await upstream.toolCalls('search_code');
      const gone = await l.client.callTool({ name: 'github.search_code', arguments: { query: 'y' } }).then(
        () => undefined,
        (error: unknown) => error as ProtocolError,
      );
      expect(gone?.code).toBe(-32602);
      expect(await upstream.toolCalls('search_code')).toBe(before);
    }

    // An org rule denies a tool: told (no upstream change), unlisted; lifting it lists it again.
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:list_repos',
      description: 'No repository listings for a while',
    });
    expect(rule.status).toBe(201);
    await everyoneTold(3);
    for (const l of listeners) expect(await l.names()).not.toContain('github.list_repos');
    const ruleId = (rule.body as { rule: { id: string } }).rule.id;
    expect(
      (await admin().call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${ruleId}`)).status,
    ).toBeLessThan(300);
    await everyoneTold(4);
    for (const l of listeners) expect(await l.names()).toContain('github.list_repos');
    for (const l of listeners) await l.client.close();
  });

  it('tells agents on either revision when the resources and prompts they are shown change upstream, and no one else', async () => {
    const sdk = sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });
    // Nora is connected too, but her agent's token does not carry github:tools (what resources
    // and prompts are decided as): she is shown none of them, so she is told nothing.
    const nora = await personToken('Nora Narrow', false, 'github:read:profile');
    await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-narrow', nora);
    // Alice at two virtual servers: one selects github whole (its resources and prompts with
    // it), the other a single tool (none of them).
    await sdk.mcpVirtualServers.put(app.orgId, 'everything', { integrations: ['github'] });
    await sdk.mcpVirtualServers.put(app.orgId, 'repos-only', { tools: ['github:list_repos'] });
    const listenAt = (path: string, token: string, era: 'modern' | 'legacy') =>
      mcpListener(new URL(path, base), token, era);
    // Opened first, so their upstream streams have the longest to open.
    const unshown = [
      await listenAt('/mcp', nora.accessToken, 'modern'),
      await listenAt('/mcp', nora.accessToken, 'legacy'),
      await listenAt('/mcp/v/repos-only', alice.accessToken, 'modern'),
    ];
    const shown = [
      await listenAt('/mcp', alice.accessToken, 'modern'),
      await listenAt('/mcp', alice.accessToken, 'legacy'),
      await listenAt('/mcp/v/everything', alice.accessToken, 'legacy'),
    ];
    // A tool change first: being told it means Alice's upstream stream is open (the gateway reads
    // her list only once it is, or when that stream says the list changed).
    for (const l of shown) expect(await l.names()).not.toContain('github.search_code');
    await upstream.offerSearchCode(true);
    await Promise.all(shown.map((l) => l.toldTimes(1)));

    const everyoneShownTold = (n: number) =>
      Promise.all(shown.flatMap((l) => [l.toldTimes(n, 'resources'), l.toldTimes(n, 'prompts')]));
    const lists = async (l: McpListener) => ({
      resources: (await l.client.listResources()).resources.map((r) => r.uri).sort(),
      prompts: (await l.client.listPrompts()).prompts.map((p) => p.name).sort(),
    });
    await upstream.offerExtras(true);
    await everyoneShownTold(1);
    for (const l of shown)
      expect(await lists(l)).toEqual({
        resources: ['github+github://notifications', 'github+github://user'],
        prompts: ['github.review_repo', 'github.triage_issues'],
      });
    await upstream.offerExtras(false);
    await everyoneShownTold(2);
    for (const l of shown)
      expect(await lists(l)).toEqual({ resources: ['github+github://user'], prompts: ['github.review_repo'] });
    // Had the others been told of the first change, they would have been by now.
    for (const l of unshown) {
      expect([l.count('resources'), l.count('prompts')]).toEqual([0, 0]);
      expect(await lists(l)).toEqual({ resources: [], prompts: [] });
    }

    await upstream.offerSearchCode(false);
    await Promise.all(shown.map((l) => l.toldTimes(2)));
    for (const l of [...shown, ...unshown]) await l.client.close();
    await sdk.mcpVirtualServers.remove(app.orgId, 'everything');
    await sdk.mcpVirtualServers.remove(app.orgId, 'repos-only');
  });

  it('tells agents when a rule or a virtual server changes which resources and prompts they are shown', async () => {
    const sdk = sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN });
    // `picked` offers one tool, so none of github's resources and prompts (not selected whole).
    await sdk.mcpVirtualServers.put(app.orgId, 'picked', { tools: ['github:list_repos'] });
    cleanups.push(() => sdk.mcpVirtualServers.remove(app.orgId, 'picked'));
    const whole = await mcpListener(new URL('/mcp', base), alice.accessToken, 'modern');
    const picked = await mcpListener(new URL('/mcp/v/picked', base), alice.accessToken, 'legacy');
    const lists = async (l: McpListener) => ({
      resources: (await l.client.listResources()).resources.map((r) => r.uri),
      prompts: (await l.client.listPrompts()).prompts.map((p) => p.name),
    });
    const shownAll = { resources: ['github+github://user'], prompts: ['github.review_repo'] };
    const shownNothing = { resources: [], prompts: [] };
    expect(await lists(whole)).toEqual(shownAll);
    expect(await lists(picked)).toEqual(shownNothing);
    const toldLists = (l: McpListener, n: number) =>
      Promise.all([l.toldTimes(n, 'resources'), l.toldTimes(n, 'prompts')]);

    // Resources and prompts are decided as github:tools: an org deny hides them, not the tools.
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:tools',
      description: 'No resources or prompts for a while',
    });
    expect(rule.status).toBe(201);
    await toldLists(whole, 1);
    expect(await lists(whole)).toEqual(shownNothing);
    expect(whole.count('tools')).toBe(0);
    const ruleId = (rule.body as { rule: { id: string } }).rule.id;
    expect(
      (await admin().call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${ruleId}`)).status,
    ).toBeLessThan(300);
    await toldLists(whole, 2);
    expect(await lists(whole)).toEqual(shownAll);

    // `picked` now selects github whole: its listener is told of its tools and of the lists.
    await sdk.mcpVirtualServers.put(app.orgId, 'picked', { integrations: ['github'] });
    await Promise.all([picked.toldTimes(1), toldLists(picked, 1)]);
    expect(await lists(picked)).toEqual(shownAll);
    // Nothing else moved for the /mcp listener: had it been told, it would have been by now.
    expect([whole.count('tools'), whole.count('resources'), whole.count('prompts')]).toEqual([0, 2, 2]);
    for (const l of [whole, picked]) await l.client.close();
  });

  it('proxies a server that speaks only 2025-11-25, to agents of either revision', async () => {
    const old = await spawnGithubMcp(sim.url, { legacyOnly: true });
    try {
      const moved = await sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN }).mcpServers.put(
        app.orgId,
        'github',
        { url: old.url, resourceArguments: { create_issue: 'repo' } },
      );
      // Another server: nothing of the old one's tools carries over until it is read.
      expect(moved).toMatchObject({ url: old.url, tools: [] });
      for (const era of ['modern', 'legacy'] as const) {
        const client = await agent(alice.accessToken, era);
        await waitFor(`the old server's tools (${era})`, async () =>
          (await client.listTools()).tools.some((t) => t.name === 'github.list_repos') ? true : undefined,
        );
        const result = await client.callTool({ name: 'github.list_repos', arguments: {} });
        expect((text(result).repos as string[]).every((r) => r.startsWith('octo-agent/'))).toBe(true);
        await client.close();
      }
      expect((await old.seenAuthorizations()).some((h) => h?.includes(alice.accessToken))).toBe(false);
    } finally {
      await sdkAdmin({ baseUrl: base, operatorToken: OPERATOR_TOKEN }).mcpServers.put(app.orgId, 'github', {
        url: upstream.url,
        resourceArguments: { create_issue: 'repo' },
      });
      await old.stop();
      // Alice's next listing reads the restored server into the catalog again.
      const client = await agent(alice.accessToken, 'modern');
      await waitFor('the restored tools', async () =>
        (await client.listTools()).tools.some((t) => t.name === 'github.list_repos') ? true : undefined,
      );
      await client.close();
    }
  });

  it('sends a person without a connection to a connect link bound to them; after connecting the retry succeeds', async () => {
    const late = await personToken('Late Larry');
    const client = await agent(late.accessToken, 'legacy');
    // Org and application allow the tools: listed before the person consented.
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('github.list_repos');
    // Listing makes no connect link (each would be a connect session stored at the broker), nor
    // does comparing what a stream of theirs may see when a rule changes: a call does.
    expect((await client.listResources()).resources).toEqual([]);
    const listener = await mcpListener(new URL('/mcp', base), late.accessToken, 'modern');
    expect(await listener.names()).toContain('github.list_repos');
    const rule = await admin().call('POST', `/v1/admin/organizations/${app.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:list_repos',
      description: 'Compared for a person not yet connected',
    });
    expect(rule.status).toBe(201);
    await listener.toldTimes(1);
    const ruleId = (rule.body as { rule: { id: string } }).rule.id;
    await admin().call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${ruleId}`);
    await listener.toldTimes(2);
    await listener.client.close();
    const connectSessions = async () => {
      const db = new pg.Client({ connectionString: stack.databaseUrl });
      await db.connect();
      try {
        const found = await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM connection_broker.connect_sessions WHERE for_user_id = $1',
          [late.userId],
        );
        return Number(found.rows[0]?.n);
      } finally {
        await db.end();
      }
    };
    expect(await connectSessions()).toBe(0);
    const elicited = await client.callTool({ name: 'github.list_repos', arguments: {} }).then(
      () => undefined,
      (error: unknown) => error as ProtocolError,
    );
    expect(elicited?.code).toBe(-32042);
    const [request] = (elicited?.data as { elicitations: { mode: string; url: string }[] }).elicitations;
    expect(request?.mode).toBe('url');
    expect(new URL(request?.url ?? '').pathname).toMatch(/^\/v1\/connect\/[A-Za-z0-9_-]{43}$/);
    expect(await connectSessions()).toBe(1);

    await connectSourceAccount(new RpcClient(nc), app, 'github', SCOPES, 'octo-late', late);
    const result = await waitFor('the grant to reach policy', async () =>
      client.callTool({ name: 'github.list_repos', arguments: {} }).catch(() => undefined),
    );
    expect((text(result).repos as string[]).every((r) => r.startsWith('octo-late/'))).toBe(true);
    await client.close();
  });

  it('refuses a browser page of another origin (DNS rebinding) and an application acting for nobody', async () => {
    const foreign = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${alice.accessToken}`,
        origin: 'https://evil.example',
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(foreign.status).toBe(403);
    const key = await admin().issueApiKey(app.appId);
    const nobody = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key.secret}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(nobody.status).toBe(403);
  });
});
