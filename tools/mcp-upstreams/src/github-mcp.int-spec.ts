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
});

it('refuses a token GitHub does not accept, and records every Authorization header it saw', async () => {
  await expect(connected('legacy', 'gho_not-a-token')).rejects.toThrow();
  const seen = await upstream.seenAuthorizations();
  expect(seen).toContain('Bearer gho_not-a-token');
  expect(seen).toContain(`Bearer ${token}`);
});
