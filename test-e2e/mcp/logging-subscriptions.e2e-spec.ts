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

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  upstream = await spawnConformanceMcp();
  stack = await startTestStack('mcp-logging', { OPERATOR_TOKEN, ...conformanceStackEnv(sim.url) });
  nc = await connect(stack.natsOptions());
  gatewayUrl = `http://localhost:${new URL(stack.gatewayUrl).port}`;
  ({ accessToken } = await conformanceOrg({
    gatewayUrl,
    operatorToken: OPERATOR_TOKEN,
    broker: new RpcClient(nc),
    sim,
    upstreamUrl: upstream.url,
  }));
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
