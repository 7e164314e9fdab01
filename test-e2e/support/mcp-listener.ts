import { expect } from '@jest/globals';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

/** The lists whose changes a listener is told (`notifications/<list>/list_changed`). */
type ListKind = 'tools' | 'resources' | 'prompts';

/** An agent holding its list-change stream open at an MCP endpoint of the gateway. */
export interface McpListener {
  era: 'modern' | 'legacy';
  client: Client;
  /** Resolves once this agent has been told of its n-th change of `list` (tools by default; events, not time). */
  toldTimes(n: number, list?: ListKind): Promise<void>;
  /** How many changes of `list` (tools by default) it has been told of so far. */
  count(list?: ListKind): number;
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
 * after initialize), resolved once its stream is open; it asks for (and expects to be offered)
 * the changes of all three lists.
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
  const told: Record<ListKind, number> = { tools: 0, resources: 0, prompts: 0 };
  const waiting: { list: ListKind; n: number; resolve: () => void }[] = [];
  for (const list of ['tools', 'resources', 'prompts'] as const)
    client.setNotificationHandler(`notifications/${list}/list_changed`, () => {
      told[list]++;
      for (const w of waiting.filter((w) => w.list === list && w.n <= told[list])) w.resolve();
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
  const capabilities = client.getServerCapabilities();
  for (const list of ['tools', 'resources', 'prompts'] as const) expect(capabilities?.[list]?.listChanged).toBe(true);
  if (era === 'modern') {
    const all = { toolsListChanged: true, resourcesListChanged: true, promptsListChanged: true };
    const subscription = await client.listen(all);
    expect(subscription.honoredFilter).toEqual(all);
    void subscription.closed.then((cause) => streamEnded(String(cause)));
  } else await opened;
  return {
    era,
    client,
    toldTimes: (n, list = 'tools') =>
      new Promise<void>((resolve) => (n <= told[list] ? resolve() : waiting.push({ list, n, resolve }))),
    count: (list = 'tools') => told[list],
    names: async () => (await client.listTools()).tools.map((t) => t.name),
    ended,
  };
}
