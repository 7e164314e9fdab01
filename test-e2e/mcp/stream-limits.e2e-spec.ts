import { spawnGithubMcp, type UpstreamProcess } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { mcpAgentOrg } from '../support/mcp-agent-org.mjs';
import { conformanceStackEnv, GITHUB_CLIENT } from '../support/mcp-conformance.mjs';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The bounds on the standing streams agents hold open at a gateway (2025-11-25 GET streams
// here; 2026-07-28 listens count the same): per application and person, per org — so one
// org's agents cannot take every stream of a gateway other orgs share — and in all. The
// stack's bounds are small (2, 3 and 4) so the test reaches each; past one, 429
// `rate_limited`, and a closed stream frees its place.
jest.setTimeout(120_000);

let stack: TestStack;
let sim: RunningSimulator;
let upstream: UpstreamProcess;
let nc: NatsConnection;
let gatewayUrl: string;
const open: AbortController[] = [];

async function agentOrg(login: string, orgName: string) {
  return mcpAgentOrg({
    gatewayUrl,
    operatorToken: OPERATOR_TOKEN,
    broker: new RpcClient(nc),
    sim,
    githubClient: GITHUB_CLIENT,
    redirectUris: [`${gatewayUrl}/v1/connect/callback`],
    login,
    repos: 1,
    orgName,
    appName: `${orgName} Agent`,
    callback: 'http://127.0.0.1:9/stream-limits-callback',
    scopes: ['github:read:profile', 'github:tools'],
    mcpServer: { url: upstream.url },
  });
}

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  upstream = await spawnGithubMcp(sim.url);
  stack = await startTestStack('mcp-stream-limits', {
    OPERATOR_TOKEN,
    ...conformanceStackEnv(sim.url),
    MCP_MAX_STREAMS_PER_PERSON: '2',
    MCP_MAX_STREAMS_PER_ORG: '3',
    MCP_MAX_STREAMS: '4',
  });
  nc = await connect(stack.natsOptions());
  gatewayUrl = `http://localhost:${new URL(stack.gatewayUrl).port}`;
}, 120_000);

afterAll(async () => {
  for (const controller of open) controller.abort();
  await nc?.close();
  await stack?.stop();
  await upstream?.stop();
  await sim?.stop();
}, 60_000);

/** Opens a 2025-11-25 GET stream at /mcp: its close, or the gateway's refusal. */
async function stream(token: string): Promise<{ status: number; code?: string; close: () => void }> {
  const controller = new AbortController();
  const res = await fetch(new URL('/mcp', gatewayUrl), {
    headers: {
      accept: 'text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${token}`,
    },
    signal: controller.signal,
  });
  if (res.status !== 200) {
    const body = (await res.json()) as { code?: string };
    return { status: res.status, code: body.code, close: () => undefined };
  }
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  open.push(controller);
  return { status: 200, close: () => controller.abort() };
}

const refused = { status: 429, code: 'rate_limited' };

describe('standing MCP streams at a gateway', () => {
  it('are bounded per application and person, per org and in all; a closed one frees its place', async () => {
    const acme = await agentOrg('limits-acme', 'Acme');
    const globex = await agentOrg('limits-globex', 'Globex');
    const acmeSecond = await acme.anotherPerson('github:tools');

    // The person's share: two streams, then refused.
    const first = await stream(acme.accessToken);
    expect(first.status).toBe(200);
    expect((await stream(acme.accessToken)).status).toBe(200);
    expect(await stream(acme.accessToken)).toMatchObject(refused);

    // The org's share: a second person of Acme gets the third place, not a fourth, though
    // their own share has room.
    expect((await stream(acmeSecond)).status).toBe(200);
    expect(await stream(acmeSecond)).toMatchObject(refused);

    // Another org still has room at this gateway: the last place in all, then nobody.
    expect((await stream(globex.accessToken)).status).toBe(200);
    expect(await stream(globex.accessToken)).toMatchObject(refused);

    // A stream closed by its client frees its place, for its org.
    first.close();
    const reopened = await waitFor('the closed stream to free its place', async () => {
      const again = await stream(acmeSecond);
      return again.status === 200 ? again : undefined;
    });
    expect(reopened.status).toBe(200);
    expect(await stream(acme.accessToken)).toMatchObject(refused);
  });
});
