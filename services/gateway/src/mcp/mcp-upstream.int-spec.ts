import { type RunningSessionMcp, startSessionMcp } from '@context-gateway/mcp-upstreams';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { Env } from '../env.js';
import { McpUpstream, type UpstreamCaller } from './mcp-upstream.js';

// The gateway's pooled clients toward a real 2025-11-25 server that keeps state per session
// (tools/mcp-upstreams session-mcp: `Mcp-Session-Id`, notes kept per session) and takes no
// credential, as an `auth: none` registration. Two orgs may register the very same URL: what
// one org's people tell the server in their session must never be what the other's hear.
const env = {
  MCP_ALLOW_INSECURE_UPSTREAMS: true,
  MCP_ALLOW_PRIVATE_UPSTREAMS: true,
  MCP_UPSTREAM_TIMEOUT_MS: 5_000,
  MCP_UPSTREAM_STREAM_MS: 600_000,
  MCP_MAX_RESULT_BYTES: 4_194_304,
} as Env;
const ACME = '0b6f7a52-1d3e-4f6a-8b9c-0d1e2f3a4b5c';
const GLOBEX = '7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
const ALICE = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const BOB = '1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b';
const INITECH = '2d3c4b5a-6978-4a8b-9c0d-1e2f3a4b5c6d';

let server: RunningSessionMcp;
let upstream: McpUpstream;

beforeAll(async () => {
  server = await startSessionMcp();
  upstream = new McpUpstream(env);
});

afterAll(async () => {
  await upstream?.onApplicationShutdown();
  await server?.stop();
});

const notes = { integration: 'notes', url: '' };

async function remember(as: UpstreamCaller, text: string): Promise<void> {
  await upstream.use({ ...notes, url: server.url }, as, undefined, (client) =>
    client.callTool({ name: 'remember', arguments: { text } }),
  );
}

async function recall(as: UpstreamCaller, integration = notes.integration) {
  const result = await upstream.use({ integration, url: server.url }, as, undefined, (client) =>
    client.callTool({ name: 'recall', arguments: {} }),
  );
  return result.structuredContent as { session: string; notes: string[] };
}

describe('pooled upstream clients of a server without a credential', () => {
  it("never share one org's upstream session with another org that registered the same URL", async () => {
    const acmeAlice: UpstreamCaller = { orgId: ACME, userId: ALICE, token: undefined };
    const globexAlice: UpstreamCaller = { orgId: GLOBEX, userId: ALICE, token: undefined };
    await remember(acmeAlice, 'the Acme merger closes Friday');
    const globex = await recall(globexAlice);
    expect(globex.notes).toEqual([]);
    const acme = await recall(acmeAlice);
    expect(acme.notes).toEqual(['the Acme merger closes Friday']);
    expect(globex.session).not.toBe(acme.session);
  });

  it("nor one person's with another's of the same org, nor across the org's registrations", async () => {
    const alice: UpstreamCaller = { orgId: INITECH, userId: ALICE, token: '' };
    const bob: UpstreamCaller = { orgId: INITECH, userId: BOB, token: '' };
    await remember(alice, "Alice's draft");
    expect((await recall(bob)).notes).toEqual([]);
    // The same URL registered again under another integration key is another registration.
    expect((await recall(alice, 'notes-mirror')).notes).toEqual([]);
    // And each keeps its own session for what follows (pooled, not a handshake per call).
    const opened = server.sessionsOpened();
    expect((await recall(alice)).notes).toEqual(["Alice's draft"]);
    expect(server.sessionsOpened()).toBe(opened);
  });
});
