import { AppError } from '@context-gateway/errors';
import { createLogger } from '@context-gateway/observability';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type OrderedConsumerOptions,
  StorageType,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

import { StreamFollower } from './jetstream-follower.js';
import { connectNats } from './nats-connection.js';
import { type PrivateNats, startPrivateNats } from './testing/private-nats.js';

// The follower on a private nats-server that is restarted under it, as in the fault suite
// (test-e2e/faults): once NATS is back, the reader must catch up with what is stored after
// the restart, or every wait on it fails closed for good.
const logger = createLogger({ service: 'follower-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const STREAM = 'FOLLOWED';
const SUBJECT = 'followed.v1.fact';

let nats: PrivateNats;
let nc: NatsConnection;
const followers: StreamFollower[] = [];

async function publish(n: number): Promise<number> {
  const js = jetstream(nc);
  let seq = 0;
  for (let i = 0; i < n; i += 1) seq = (await js.publish(SUBJECT, new TextEncoder().encode(`fact ${i}`))).seq;
  return seq;
}

async function follower(
  from: Partial<OrderedConsumerOptions>,
  stream = STREAM,
): Promise<{ follower: StreamFollower; seen: number[] }> {
  const seen: number[] = [];
  const f = new StreamFollower(nc, {
    stream,
    name: 'test reader',
    logger,
    onMessage: (m) => seen.push(m.seq),
    lateError: () => new AppError('service_unavailable', 'not read up to date in time'),
  });
  followers.push(f);
  await f.start(from);
  return { follower: f, seen };
}

/** The connection's subscriptions: nats.js counts them on its protocol handler, which its types do not show. */
function subscriptionCount(): number {
  return (nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size();
}

async function consumerNames(stream: string): Promise<string[]> {
  const names: string[] = [];
  for await (const c of (await jetstreamManager(nc)).consumers.list(stream)) names.push(c.name);
  return names;
}

/** A stopped follower deletes its consumer without waiting for the answer. */
async function noConsumerLeft(stream: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await consumerNames(stream)).length > 0) {
    if (Date.now() > deadline) throw new Error(`consumers left on ${stream}: ${(await consumerNames(stream)).join()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Time for a leaked subscription or a second consumer to show up, if the client made one. */
const settle = () => new Promise((r) => setTimeout(r, 1_500));

/** Waits for the client to be connected again and JetStream to answer (it restores streams after start). */
async function jetStreamBack(): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (await jetstreamManager(nc, { timeout: 1_000 })).streams.info(STREAM);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

beforeAll(async () => {
  nats = await startPrivateNats();
  nc = await connectNats({ url: nats.url, name: 'follower-test', logger, bootTimeoutMs: 5_000 });
  await (await jetstreamManager(nc)).streams.add({ name: STREAM, subjects: [SUBJECT], storage: StorageType.File });
}, 20_000);

afterAll(async () => {
  for (const f of followers) await f.stop();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
});

describe('StreamFollower', () => {
  // A start by time (what the token revocation reader replays) is what the client's own
  // recreation of the consumer could not repeat: it kept the start time with a start sequence.
  it.each([
    ['from sequence 1', { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 }],
    ['from a start time', { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(0).toISOString() }],
  ] as const)(
    'read %s, catches up with what is stored after nats-server restarts, each message once',
    async (_, from) => {
      const { follower: f, seen } = await follower(from);
      const before = await publish(3);
      await f.waitConsumed(before, 5_000);
      const subscriptions = subscriptionCount();

      await nats.restart();
      await jetStreamBack();
      const after = await publish(2);

      // Bounded by the follower's own recovery, not by a client's heartbeat schedule: a
      // reader that needs the 30 s+ of missed heartbeats would fail every request meanwhile.
      await expect(f.waitConsumed(after, 10_000)).resolves.toBeUndefined();
      expect(seen).toEqual(Array.from({ length: after }, (_, i) => i + 1));

      // The client's own recreation of the consumer we replaced left one subscription and
      // one server consumer behind per reconnect.
      await settle();
      expect(await consumerNames(STREAM)).toHaveLength(1);
      expect(subscriptionCount()).toBe(subscriptions);
      await f.stop();
      await noConsumerLeft(STREAM);
    },
  );

  it('stopped while it waits to retry, leaves no consumer and reads nothing more', async () => {
    const GONE = 'FOLLOWED_GONE';
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: GONE, subjects: ['gone.v1.fact'], storage: StorageType.File });
    const { follower: f, seen } = await follower({ deliver_policy: DeliverPolicy.All }, GONE);
    // The consumer goes with its stream; reading again fails until the stream is back.
    await jsm.streams.delete(GONE);
    await new Promise((r) => setTimeout(r, 500));
    await f.stop();

    await jsm.streams.add({ name: GONE, subjects: ['gone.v1.fact'], storage: StorageType.File });
    await jetstream(nc).publish('gone.v1.fact', new TextEncoder().encode('after stop'));
    await settle();
    expect(await consumerNames(GONE)).toEqual([]);
    expect(seen).toEqual([]);
  }, 20_000);

  it('reads a stream recreated behind it again from its first message, not from its old position', async () => {
    const AGAIN = 'FOLLOWED_AGAIN';
    const subject = 'again.v1.fact';
    const jsm = await jetstreamManager(nc);
    const add = () => jsm.streams.add({ name: AGAIN, subjects: [subject], storage: StorageType.File });
    const put = async (n: number) => {
      let seq = 0;
      for (let i = 0; i < n; i += 1) seq = (await jetstream(nc).publish(subject, new Uint8Array([i]))).seq;
      return seq;
    };
    await add();
    const { follower: f, seen } = await follower({ deliver_policy: DeliverPolicy.All }, AGAIN);
    await f.waitConsumed(await put(5), 5_000);

    // Lost with its data and made again: its sequence numbers start at 1, below the 5 read.
    await jsm.streams.delete(AGAIN);
    await add();
    await put(2);

    const deadline = Date.now() + 10_000;
    while (seen.length < 7 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([1, 2, 3, 4, 5, 1, 2]);
    expect(f.consumedSeq).toBe(2);
    // A wait on the new stream's next message waits for it rather than pass on the old 5.
    const next = f.waitConsumed(3, 10_000);
    await put(1);
    await expect(next).resolves.toBeUndefined();
    expect(seen).toEqual([1, 2, 3, 4, 5, 1, 2, 3]);
    await f.stop();
  }, 30_000);
});
