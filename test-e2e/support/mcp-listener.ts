import { expect } from '@jest/globals';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

/** An agent holding its list-change stream open at an MCP endpoint of the gateway. */
export interface McpListener {
  era: 'modern' | 'legacy';
  client: Client;
  /** Resolves once this agent has been told of its n-th change (events, not time). */
  toldTimes(n: number): Promise<void>;
  /** How many changes it has been told of so far. */
  count(): number;
  names(): Promise<string[]>;
  /**
   * Settles when the gateway ended the stream: 2026-07-28 with the subscription's close cause
   * (`graceful`: its final result came), 2025-11-25 with `ended` (the GET stream's body ended).
   */
  ended: Promise<string>;
}

/**
 * The official SDK client at `url` (`modern` negotiates 2026-07-28 and opens
 * subscriptions/listen, `legacy` speaks 2025-11-25 and holds the GET stream the SDK opens
 * after initialize), resolved once its stream is open.
 */
export async function mcpListener(url: URL, token: string, era: 'modern' | 'legacy'): Promise<McpListener> {
  let streamOpen!: () => void;
  const opened = new Promise<void>((resolve) => (streamOpen = resolve));
  let streamEnded!: (how: string) => void;
  const ended = new Promise<string>((resolve) => (streamEnded = resolve));
  const client = new Client(
    { name: `e2e-listener-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  let told = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  client.setNotificationHandler('notifications/tools/list_changed', () => {
    told++;
    for (const w of waiting.filter((w) => w.n <= told)) w.resolve();
  });
  await client.connect(
    new StreamableHTTPClientTransport(url, {
      authProvider: { token: () => Promise.resolve(token) },
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method !== 'GET' || !res.ok || !res.body) return res;
        streamOpen();
        const observed = res.body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({ flush: () => streamEnded('ended') }),
        );
        return new Response(observed, res);
      },
    }),
  );
  expect(client.getServerCapabilities()?.tools?.listChanged).toBe(true);
  if (era === 'modern') {
    const subscription = await client.listen({ toolsListChanged: true });
    expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
    void subscription.closed.then((cause) => streamEnded(String(cause)));
  } else await opened;
  return {
    era,
    client,
    toldTimes: (n) => new Promise<void>((resolve) => (n <= told ? resolve() : waiting.push({ n, resolve }))),
    count: () => told,
    names: async () => (await client.listTools()).tools.map((t) => t.name),
    ended,
  };
}
