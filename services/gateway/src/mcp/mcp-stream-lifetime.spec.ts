import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

import { createLogger } from '@context-gateway/observability';
import { describe, expect, it } from '@jest/globals';

import { boundedStream } from './mcp-stream-lifetime.js';
import { McpSubscribers, type StreamCaller } from './mcp-subscribers.js';

// A client stream's subscriber entry goes when the client goes or the stream's lifetime ends.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });
const alice = { orgId: 'org-1', applicationId: 'app-1', onBehalfOf: 'alice' } as StreamCaller;

/** A stream like the SDK's listen router makes: subscribed while open, unsubscribed on cancel. */
function listenBody(subscribers: McpSubscribers): ReadableStream<Uint8Array> {
  let unsubscribe: () => void = () => undefined;
  return new ReadableStream<Uint8Array>({
    start: (controller) => {
      unsubscribe = subscribers.within(alice, () => subscribers.bus.subscribe(() => undefined));
      controller.enqueue(new TextEncoder().encode(': open\n\n'));
    },
    cancel: () => unsubscribe(),
  });
}

describe('boundedStream', () => {
  it("removes a disconnected client's subscriber entry (the HTTP layer destroys the body)", async () => {
    const subscribers = new McpSubscribers(logger);
    let closes = 0;
    const body = Readable.fromWeb(boundedStream(listenBody(subscribers), 60_000, () => closes++).body as never);
    await new Promise((resolve) => body.once('data', resolve));
    expect(subscribers.open(alice).person).toBe(1);
    // What fastify does when the client's connection closes before the body ended.
    body.destroy();
    await finished(body).catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    expect(subscribers.open(alice).person).toBe(0);
    expect(closes).toBe(1);
  });

  it('writes the ending and closes once when the lifetime is up', async () => {
    const subscribers = new McpSubscribers(logger);
    let closes = 0;
    const ending = new TextEncoder().encode('event: message\ndata: {"result":{"resultType":"complete"}}\n\n');
    const stream = boundedStream(listenBody(subscribers), 20, () => closes++, ending).body;
    let text = '';
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) text += new TextDecoder().decode(chunk);
    expect(text).toBe(': open\n\nevent: message\ndata: {"result":{"resultType":"complete"}}\n\n');
    expect(subscribers.open(alice).person).toBe(0);
    expect(closes).toBe(1);
  });

  it('closes when the source ends', async () => {
    let closes = 0;
    const source = new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(new Uint8Array([1]));
        c.close();
      },
    });
    const chunks: Uint8Array[] = [];
    for await (const chunk of boundedStream(source, 60_000, () => closes++)
      .body as unknown as AsyncIterable<Uint8Array>)
      chunks.push(chunk);
    expect(chunks).toEqual([new Uint8Array([1])]);
    expect(closes).toBe(1);
  });

  it('writes the last event and the ending when the server ends it early, and closes once', async () => {
    const subscribers = new McpSubscribers(logger);
    let closes = 0;
    const encode = (text: string) => new TextEncoder().encode(text);
    const bounded = boundedStream(listenBody(subscribers), 60_000, () => closes++, encode('complete\n\n'));
    const reader = bounded.body.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    bounded.end(encode('list_changed\n\n'));
    bounded.end(encode('again\n\n'));
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += new TextDecoder().decode(next.value);
    expect(text).toBe(': open\n\nlist_changed\n\ncomplete\n\n');
    expect(subscribers.open(alice).person).toBe(0);
    expect(closes).toBe(1);
  });
});
