import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';

// What patches/@nats-io__nats-core@3.4.0.patch changes in the NATS client, against the real
// server: the client's socket writes wait for the end of the event loop's turn, a command
// queued just before close() is written first (best effort: close() destroys the socket, so
// what the kernel does not take is lost — services shut down with drain()), and a request
// settles as before without cancel()'s error after its reply. Subjects are unique to this
// file so parallel runs never meet.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = `test${randomUUID().slice(0, 8)}`;

/** The client's socket writes, counted (the transport is internal: this is what the patch is about). */
function countWrites(nc: NatsConnection): { count: number } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol
    .transport;
  const counter = { count: 0 };
  const send = transport.send.bind(transport);
  transport.send = (frame) => {
    counter.count += 1;
    send(frame);
  };
  return counter;
}

let server: NatsConnection;

beforeAll(async () => {
  server = await connect({ servers: NATS_URL });
  server.subscribe(`${prefix}.echo`, { callback: (_error, m) => void m.respond(m.data) });
  await server.flush();
});

afterAll(async () => {
  await server.close();
});

describe('the patched NATS client', () => {
  it('sends the requests of five callbacks of one event-loop turn in one socket write, and each gets its reply', async () => {
    const nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    try {
      // The mux subscription is set up by the first request; warm it so only the requests count.
      await nc.request(`${prefix}.echo`, 'warm', { timeout: 2_000 });
      const writes = countWrites(nc);
      // Separate callbacks, like HTTP requests read in one poll phase: before the patch each
      // flushed its own PUB after its microtasks (five writes).
      const replies = await new Promise<Promise<string>[]>((resolve) => {
        const started: Promise<string>[] = [];
        for (let i = 0; i < 5; i += 1) {
          setImmediate(() => {
            started.push(nc.request(`${prefix}.echo`, `q${i}`, { timeout: 2_000 }).then((m) => m.string()));
            if (started.length === 5) resolve(started);
          });
        }
      });
      expect(await Promise.all(replies)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
      expect(writes.count).toBe(1);
    } finally {
      await nc.close();
    }
  });

  it('a request still fails as it did: timeout, no responders, the connection closed under it', async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const silent = `${prefix}.silent`;
      // Someone listens and never answers: the request's own timeout.
      server.subscribe(silent, { callback: () => undefined });
      await server.flush();
      const timedOut = await nc.request(silent, 'x', { timeout: 200 }).catch((error: unknown) => error);
      expect(timedOut).toBeInstanceOf(TimeoutError);
      // Nobody listens: the server's no-responders status.
      const unanswered = await nc.request(`${prefix}.nobody`, 'x', { timeout: 2_000 }).catch((e: unknown) => e);
      expect(unanswered).toBeInstanceOf(RequestError);
      expect((unanswered as RequestError).cause).toBeInstanceOf(NoRespondersError);
      // Closed while the request waits: rejected, not left pending.
      const pending = nc.request(silent, 'x', { timeout: 30_000 }).catch((error: unknown) => error);
      await nc.flush();
      await nc.close();
      const closed = await pending;
      expect(closed).toBeInstanceOf(RequestError);
      expect(String((closed as Error).message)).toMatch(/closed/);
    } finally {
      if (!nc.isClosed()) await nc.close();
    }
  });

  it('a publish right before close() still reaches the server', async () => {
    const received = new Promise<string>((resolve) => {
      server.subscribe(`${prefix}.last`, { max: 1, callback: (_error, m) => resolve(m.string()) });
    });
    await server.flush();
    const nc = await connect({ servers: NATS_URL });
    nc.publish(`${prefix}.last`, 'the last word');
    await nc.close();
    await expect(received).resolves.toBe('the last word');
  });
});
