import { spawnConformanceMcp, type SpawnedMcp } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import {
  Client,
  LOG_LEVEL_META_KEY,
  type LoggingLevel,
  type LoggingMessageNotification,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { conformanceOrg, conformanceStackEnv } from '../support/mcp-conformance.mjs';
import { startTestStack, type TestStack } from '../support/test-stack.js';

// Upstream log messages through gateway mode: the conformance upstream (its own process; its
// `test_tool_with_logging` logs three `info` messages while it runs) registered as an org's
// `github` MCP server, and the official SDK client at /mcp with a person's access token, on
// both protocol revisions. The agent's level decides what it receives: per request in `_meta`
// on 2026-07-28, with `logging/setLevel` on 2025-11-25 (remembered for this application and
// person: the gateway keeps no sessions).
jest.setTimeout(120_000);

let stack: TestStack;
let sim: RunningSimulator;
let upstream: SpawnedMcp;
let nc: NatsConnection;
let gatewayUrl: string;
let accessToken: string;
let org: Awaited<ReturnType<typeof conformanceOrg>>;

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  upstream = await spawnConformanceMcp();
  stack = await startTestStack('mcp-logging', { OPERATOR_TOKEN, ...conformanceStackEnv(sim.url) });
  nc = await connect(stack.natsOptions());
  gatewayUrl = `http://localhost:${new URL(stack.gatewayUrl).port}`;
  org = await conformanceOrg({
    gatewayUrl,
    operatorToken: OPERATOR_TOKEN,
    broker: new RpcClient(nc),
    sim,
    upstreamUrl: upstream.url,
  });
  ({ accessToken } = org);
}, 120_000);

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
  await upstream?.stop();
  await sim?.stop();
}, 60_000);

/** The official SDK client at /mcp, keeping every log message it receives. */
async function agent(era: 'modern' | 'legacy') {
  const client = new Client(
    { name: `e2e-logging-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  const logs: LoggingMessageNotification['params'][] = [];
  client.setNotificationHandler('notifications/message', (n) => void logs.push(n.params));
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', gatewayUrl), {
      authProvider: { token: () => Promise.resolve(accessToken) },
    }),
  );
  return { client, logs };
}

const STEPS = ['Tool execution started', 'Tool processing data', 'Tool execution completed'];

describe('upstream log messages at /mcp', () => {
  it('2026-07-28: a call brings the messages at the level its _meta asks, named for the integration', async () => {
    const { client, logs } = await agent('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
    const call = (level?: LoggingLevel) =>
      client.callTool({
        name: 'github.test_tool_with_logging',
        arguments: {},
        ...(level ? { _meta: { [LOG_LEVEL_META_KEY]: level } } : {}),
      });

    await call('info');
    expect(logs).toEqual(STEPS.map((data) => ({ level: 'info', logger: 'github', data })));
    // Above the messages' level: none; no level at all: none (the spec forbids sending any).
    await call('warning');
    await call();
    expect(logs).toHaveLength(3);
    await client.close();
  });

  it('2025-11-25: logging/setLevel sets what the following calls bring', async () => {
    const { client, logs } = await agent('legacy');
    expect(client.getNegotiatedProtocolVersion()).toBe('2025-11-25');
    expect(client.getServerCapabilities()?.logging).toEqual({});
    await client.setLoggingLevel('error');
    await client.callTool({ name: 'github.test_tool_with_logging', arguments: {} });
    expect(logs).toEqual([]);

    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'github.test_tool_with_logging', arguments: {} });
    expect(logs).toEqual(STEPS.map((data) => ({ level: 'info', logger: 'github', data })));
    await client.close();
  });

  it('messages of concurrent calls on one upstream connection each reach their own call', async () => {
    // The same person: the gateway's calls share one pooled upstream client.
    const a = await agent('modern');
    const b = await agent('modern');
    const debug = { _meta: { [LOG_LEVEL_META_KEY]: 'debug' } };
    await Promise.all([
      a.client.callTool({ name: 'github.test_tool_with_logging', arguments: {}, ...debug }),
      b.client.callTool({ name: 'github.test_tool_with_logging', arguments: {}, ...debug }),
      a.client.callTool({ name: 'github.test_simple_text', arguments: {}, ...debug }),
      b.client.callTool({ name: 'github.test_tool_with_logging', arguments: {} }),
    ]);
    expect(a.logs.map((m) => m.data)).toEqual(STEPS);
    expect(b.logs.map((m) => m.data)).toEqual(STEPS);
    await a.client.close();
    await b.client.close();
  });
});

/** The watched resource of the upstream changes (its subscribers are told, as a server tells them). */
const touch = () => fetch(new URL('/_control/watched-resource', upstream.url), { method: 'POST' });
const WATCHED = 'github+test://watched-resource';

/** Changes the watched resource until `received` holds (a stream may still be opening), at most 20 s. */
async function touchUntil(received: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !received(); i++) {
    await touch();
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(received()).toBe(true);
}

/**
 * One 2026-07-28 request at /mcp, sent by hand: the SDK client will not send a method its
 * revision lacks. The answer's JSON-RPC message (a JSON body or the stream's one message).
 */
async function modernRequest(method: string, params: { uri: string }): Promise<unknown> {
  const response = await fetch(new URL('/mcp', gatewayUrl), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      'mcp-name': params.uri,
      authorization: `Bearer ${accessToken}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'e2e-raw', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  const text = await response.text();
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) return JSON.parse(text);
  const data = text.split('\n').find((line) => line.startsWith('data: '));
  return data ? JSON.parse(data.slice('data: '.length)) : undefined;
}

/** The official SDK client at /mcp, keeping the resource URIs it is told were updated. */
async function subscriber(era: 'modern' | 'legacy', token = accessToken) {
  const client = new Client(
    { name: `e2e-subscriber-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  const updated: string[] = [];
  client.setNotificationHandler('notifications/resources/updated', (n) => void updated.push(n.params.uri));
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', gatewayUrl), {
      authProvider: { token: () => Promise.resolve(token) },
    }),
  );
  return { client, updated };
}

describe('resource subscriptions at /mcp', () => {
  it('both revisions: subscribe by the gateway URI, get its updates, unsubscribe and get no more', async () => {
    const modern = await subscriber('modern');
    expect(modern.client.getServerCapabilities()?.resources?.subscribe).toBe(true);
    // 2026-07-28 has no resources/subscribe or resources/unsubscribe (subscriptions/listen
    // replaced them): unknown methods there, while the same request shape reads the resource.
    expect(await modernRequest('resources/read', { uri: WATCHED })).toMatchObject({
      result: { contents: [{ uri: WATCHED }] },
    });
    for (const method of ['resources/subscribe', 'resources/unsubscribe'])
      expect(await modernRequest(method, { uri: WATCHED })).toMatchObject({ error: { code: -32601 } });
    // 2026-07-28: the subscription rides on subscriptions/listen; URIs nobody may read are not honoured.
    const listen = await modern.client.listen({
      resourceSubscriptions: [WATCHED, 'github+test://static-text', 'slack+test://watched-resource', 'nonsense'],
    });
    expect(listen.honoredFilter.resourceSubscriptions).toEqual([WATCHED, 'github+test://static-text']);
    await touchUntil(() => modern.updated.includes(WATCHED));
    expect(new Set(modern.updated)).toEqual(new Set([WATCHED]));
    // What the update is about: reading the resource again shows its new revision.
    const read = await modern.client.readResource({ uri: WATCHED }, { cacheMode: 'bypass' });
    expect(read.contents[0]).toMatchObject({ uri: WATCHED, text: expect.stringMatching(/revision \d+/) });

    // 2025-11-25: resources/subscribe, the updates on the client's GET stream.
    const legacy = await subscriber('legacy');
    expect(legacy.client.getNegotiatedProtocolVersion()).toBe('2025-11-25');
    await legacy.client.subscribeResource({ uri: WATCHED });
    await touchUntil(() => legacy.updated.includes(WATCHED));

    // The modern stream closes, the legacy client unsubscribes: further changes reach neither.
    // A third subscriber, still listening, shows when a change has been delivered.
    await listen.close();
    await legacy.client.unsubscribeResource({ uri: WATCHED });
    // Updates already on their way when they left may still arrive: let them.
    await new Promise((r) => setTimeout(r, 500));
    const before = { modern: modern.updated.length, legacy: legacy.updated.length };
    const witness = await subscriber('modern');
    await witness.client.listen({ resourceSubscriptions: [WATCHED] });
    await touchUntil(() => witness.updated.length > 0);
    expect({ modern: modern.updated.length, legacy: legacy.updated.length }).toEqual(before);
    for (const c of [modern, legacy, witness]) await c.client.close();
  });

  it("2025-11-25: a GET stream whose token lacks the integration's scope gets none of its updates", async () => {
    // The same application and person, another token: one without `github:tools` holds a GET stream…
    const outsider = await subscriber('legacy', await org.tokenFor('github:read:profile'));
    // …while the full token subscribes. Its GET stream, opened after the outsider's, gets the update.
    const subscribed = await subscriber('legacy');
    await subscribed.client.subscribeResource({ uri: WATCHED });
    await touchUntil(() => subscribed.updated.includes(WATCHED));
    // Updates go to both sinks in one turn: had the outsider's been told, it would be here by now.
    await new Promise((r) => setTimeout(r, 500));
    expect(outsider.updated).toEqual([]);
    await subscribed.client.unsubscribeResource({ uri: WATCHED });
    for (const c of [outsider, subscribed]) await c.client.close();
  });

  it('a URI the agent may not read cannot be subscribed, and its updates stop when access goes', async () => {
    const legacy = await subscriber('legacy');
    await expect(legacy.client.subscribeResource({ uri: 'slack+test://watched-resource' })).rejects.toMatchObject({
      code: -32602,
    });
    await legacy.client.subscribeResource({ uri: WATCHED });
    await touchUntil(() => legacy.updated.includes(WATCHED));

    // The application may no longer use GitHub's tools: the same error as an unknown URI, and
    // the subscription it held delivers nothing more.
    const { rule } = await org.admin('POST', `/v1/admin/organizations/${org.orgId}/policy/rules`, {
      effect: 'deny',
      capability: 'github:tools',
    });
    let ruleId: string | undefined = rule.id;
    try {
      await expect(legacy.client.subscribeResource({ uri: WATCHED })).rejects.toMatchObject({ code: -32602 });
      const modern = await subscriber('modern');
      const listen = await modern.client.listen({ resourceSubscriptions: [WATCHED], toolsListChanged: true });
      expect(listen.honoredFilter.resourceSubscriptions).toBeUndefined();
      await modern.client.close();
      const seen = legacy.updated.length;
      await touch();
      // Access back: the subscription that access ended does not come back with it (a fresh
      // subscriber, told of the next changes, shows when they have been delivered).
      await org.admin('DELETE', `/v1/admin/organizations/${org.orgId}/policy/rules/${rule.id}`);
      ruleId = undefined;
      const witness = await subscriber('modern');
      await witness.client.listen({ resourceSubscriptions: [WATCHED] });
      await touchUntil(() => witness.updated.length > 0);
      expect(legacy.updated.length).toBe(seen);
      await witness.client.close();
    } finally {
      if (ruleId) await org.admin('DELETE', `/v1/admin/organizations/${org.orgId}/policy/rules/${ruleId}`);
    }
    await legacy.client.close();
  });
});
