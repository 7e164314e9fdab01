import { obtainTokens, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import { spawnGithubMcp, type UpstreamProcess } from './spawn.js';

// The GitHub-shaped test upstream as the gateway meets it: a separate process, the official
// SDK client on either protocol revision, bearer tokens checked against the GitHub simulator.
let sim: RunningSimulator;
let upstream: UpstreamProcess;
let token: string;

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  await sim.control.createAccount({ login: 'octo-mcp', counts: { repos: 3, starred: 0, issues: 0 } });
  token = (await obtainTokens(sim, 'octo-mcp', ['repo'])).access_token;
  upstream = await spawnGithubMcp(sim.url);
}, 60_000);

afterAll(async () => {
  await upstream?.stop();
  await sim?.stop();
});

async function connected(mode: 'legacy' | 'auto', bearer = token): Promise<Client> {
  const client = new Client({ name: 'upstream-test', version: '1.0.0' }, { versionNegotiation: { mode } });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(upstream.url), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    }),
  );
  return client;
}

describe.each([
  ['2025-11-25 (initialize)', 'legacy'],
  ['2026-07-28 (server/discover)', 'auto'],
] as const)('the GitHub-shaped upstream over %s', (_name, mode) => {
  it('lists its three tools with their annotations and calls one with the GitHub account of the token', async () => {
    const client = await connected(mode);
    const { tools } = await client.listTools();
    expect(Object.fromEntries(tools.map((t) => [t.name, t.annotations?.destructiveHint ?? false]))).toEqual({
      list_repos: false,
      create_issue: false,
      delete_repo: true,
    });
    const repos = await client.callTool({ name: 'list_repos', arguments: {} });
    expect((repos.structuredContent as { repos: string[] }).repos).toHaveLength(3);
    const issue = await client.callTool({ name: 'create_issue', arguments: { repo: 'octo-mcp/a', title: 'hi' } });
    expect(issue.structuredContent).toMatchObject({ author: 'octo-mcp', repo: 'octo-mcp/a' });
    await client.close();
  });

  it('tells a listening client that its tool list changed, through the SDK, and lists the change', async () => {
    const client = await connected(mode);
    const changes: string[] = [];
    let told: () => void = () => undefined;
    client.setNotificationHandler('notifications/tools/list_changed', (n) => {
      changes.push(n.method);
      told();
    });
    // 2026-07-28: subscriptions/listen; 2025-11-25: the GET stream the SDK opened after initialize.
    const subscription = mode === 'auto' ? await client.listen({ toolsListChanged: true }) : undefined;
    if (mode === 'auto') expect(subscription?.honoredFilter).toEqual({ toolsListChanged: true });
    // The SDK opens the GET stream after initialize without waiting for it: wait until it is open.
    else while ((await upstream.openStreams()) === 0) await new Promise((r) => setTimeout(r, 20));
    for (const offered of [true, false]) {
      const seen = new Promise<void>((resolve) => (told = resolve));
      await upstream.offerSearchCode(offered);
      await seen;
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names.includes('search_code')).toBe(offered);
    }
    expect(changes.length).toBeGreaterThanOrEqual(2);
    await subscription?.close();
    await client.close();
  });
});

it('marks its 2026-07-28 tool lists with the ttlMs it was given, private to the account', async () => {
  const ttl = await spawnGithubMcp(sim.url, { toolsTtlMs: 45_000 });
  try {
    const res = await fetch(ttl.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: {
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    const body = (await res.json()) as { result?: { ttlMs?: number; cacheScope?: string } };
    expect(body.result).toMatchObject({ ttlMs: 45_000, cacheScope: 'private' });
  } finally {
    await ttl.stop();
  }
});

it('refuses a token GitHub does not accept, and records every Authorization header it saw', async () => {
  await expect(connected('legacy', 'gho_not-a-token')).rejects.toThrow();
  const seen = await upstream.seenAuthorizations();
  expect(seen).toContain('Bearer gho_not-a-token');
  expect(seen).toContain(`Bearer ${token}`);
});
