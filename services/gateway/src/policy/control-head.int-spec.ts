import { randomUUID } from 'node:crypto';

import { timestampNow } from '@bufbuild/protobuf/wkt';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { events, streams } from '@context-gateway/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

import { ControlHead } from './control-head.js';

// The freshness check on real nats-servers: a change whose publish returned is covered by
// the next check, whether the check came from the pushed sequences or from STREAM.INFO, and
// the push is trusted only where it is proven complete. The publisher has its own
// connection, as identity or policy would.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });

const policyChanged = (publisher: JetStreamPublisher) =>
  publisher.publish(events.policyChanged, {
    eventId: randomUUID(),
    orgId: randomUUID(),
    revision: 1n,
    cause: 'rule_put',
    occurredAt: timestampNow(),
  });

/** Counts the STREAM.INFO requests for CONTROL that reach the server, from anyone. */
async function streamInfoSpy(nc: NatsConnection): Promise<{ count: () => number; stop: () => void }> {
  let asked = 0;
  const sub = nc.subscribe(`$JS.API.STREAM.INFO.${streams.control.name}`, { callback: () => void (asked += 1) });
  await nc.flush();
  return { count: () => asked, stop: () => sub.unsubscribe() };
}

const opened: NatsConnection[] = [];
async function connect(nats: PrivateNats, name: string): Promise<NatsConnection> {
  const nc = await connectNats({ url: nats.url, name, logger, bootTimeoutMs: 5_000 });
  opened.push(nc);
  return nc;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((nc) => nc.close().catch(() => undefined)));
});

describe('ControlHead on a stream that republishes its sequences (one server)', () => {
  let nats: PrivateNats;
  let publisher: JetStreamPublisher;

  beforeAll(async () => {
    nats = await startPrivateNats();
    const admin = await connectNats({ url: nats.url, name: 'head-admin', logger, bootTimeoutMs: 5_000 });
    await ensureStreams(admin, [streams.control], logger);
    await admin.close();
  }, 20_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it('covers every change that returned before the check, with no JetStream API call once the push is proven', async () => {
    publisher = new JetStreamPublisher(await connect(nats, 'policy'));
    const gateway = await connect(nats, 'gateway');
    const head = new ControlHead(gateway);
    await policyChanged(publisher);
    // The first check asks the server: that answer proves the push complete from then on.
    expect(await head.latestSeq()).toBe(1);
    expect(head.stats).toEqual({ asked: 1, flushed: 0 });

    const spy = await streamInfoSpy(await connect(nats, 'spy'));
    for (let i = 0; i < 200; i += 1) {
      const { seq } = await policyChanged(publisher);
      // The publisher holds its ack: the very next check of the gateway must cover it.
      expect(await head.latestSeq()).toBeGreaterThanOrEqual(seq);
    }
    // Concurrent checks behind a burst of changes share round trips and still cover the burst.
    const burst = await Promise.all(Array.from({ length: 20 }, () => policyChanged(publisher)));
    const answers = await Promise.all(Array.from({ length: 50 }, () => head.latestSeq()));
    const last = Math.max(...burst.map((a) => a.seq));
    for (const answer of answers) expect(answer).toBeGreaterThanOrEqual(last);

    expect(spy.count()).toBe(0);
    expect(head.stats.asked).toBe(1);
    expect(head.stats.flushed).toBeGreaterThanOrEqual(201);

    // Checks from separate callbacks of one event-loop turn (HTTP requests read in one poll
    // phase) share one round trip, sent after the last of them asked.
    const flushedBefore = head.stats.flushed;
    const { seq: latest } = await policyChanged(publisher);
    const sameTurn = await new Promise<Promise<number>[]>((resolve) => {
      const started: Promise<number>[] = [];
      for (let i = 0; i < 8; i += 1)
        setImmediate(() => {
          started.push(head.latestSeq());
          if (started.length === 8) resolve(started);
        });
    });
    for (const answer of await Promise.all(sameTurn)) expect(answer).toBeGreaterThanOrEqual(latest);
    expect(head.stats.flushed - flushedBefore).toBe(1);
    spy.stop();
  });

  it('after a reconnect asks the server once (copies sent meanwhile may be lost), then trusts the push again', async () => {
    publisher = new JetStreamPublisher(await connect(nats, 'policy'));
    const gateway = await connect(nats, 'gateway');
    const head = new ControlHead(gateway);
    await head.latestSeq();
    expect(head.stats.asked).toBe(1);

    const before = gateway.info?.client_id;
    const reconnected = (async () => {
      for await (const status of gateway.status()) if (status.type === 'reconnect') return;
    })();
    await gateway.reconnect();
    await reconnected;
    expect(gateway.info?.client_id).not.toBe(before);

    const { seq } = await policyChanged(publisher);
    expect(await head.latestSeq()).toBeGreaterThanOrEqual(seq);
    expect(head.stats.asked).toBe(2);

    const next = await policyChanged(publisher);
    expect(await head.latestSeq()).toBeGreaterThanOrEqual(next.seq);
    expect(head.stats.asked).toBe(2);
    expect(head.stats.flushed).toBe(1);
  });
});

describe('ControlHead on a stream without RePublish (made by an older nats-server)', () => {
  let nats: PrivateNats;

  beforeAll(async () => {
    nats = await startPrivateNats();
    const admin = await connectNats({ url: nats.url, name: 'head-admin', logger, bootTimeoutMs: 5_000 });
    // What a stream created before the catalog asked for RePublish looks like.
    await (
      await jetstreamManager(admin)
    ).streams.add({ name: streams.control.name, subjects: [...streams.control.subjects] });
    // The bootstrap leaves it so on a server that cannot add RePublish, and adds it on one that can.
    await ensureStreams(admin, [streams.control], logger);
    await admin.close();
  }, 20_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it('asks the server on every check and still covers every change that returned before it', async () => {
    const info = await (await jetstreamManager(await connect(nats, 'admin'))).streams.info(streams.control.name);
    const publisher = new JetStreamPublisher(await connect(nats, 'policy'));
    const head = new ControlHead(await connect(nats, 'gateway'));
    for (let i = 0; i < 20; i += 1) {
      const { seq } = await policyChanged(publisher);
      expect(await head.latestSeq()).toBeGreaterThanOrEqual(seq);
    }
    if (info.config.republish === undefined) {
      // nats-server 2.9: the push is never trusted, every check is a STREAM.INFO
      expect(head.stats).toEqual({ asked: 20, flushed: 0 });
    } else {
      // 2.10 and later added it on update: the first answer proves the push complete
      expect(head.stats).toEqual({ asked: 1, flushed: 19 });
    }
  });
});
