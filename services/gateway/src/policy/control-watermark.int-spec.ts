import { randomUUID } from 'node:crypto';

import { timestampNow } from '@bufbuild/protobuf/wkt';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger, runWithRequestContext } from '@context-gateway/observability';
import { events, GrantStatus, streams } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

import { ControlHead } from './control-head.js';
import { ControlWatermark, type Requirement } from './control-watermark.js';

// The consistency primitive on a private nats-server: "the stream's last sequence, asked
// after I started" and "I have read up to it", with what each event requires of an org.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });

let nats: PrivateNats;
let nc: NatsConnection;
let publisher: JetStreamPublisher;
let watermark: ControlWatermark;
const required: Requirement[] = [];

beforeAll(async () => {
  nats = await startPrivateNats();
  nc = await connectNats({ url: nats.url, name: 'watermark-test', logger, bootTimeoutMs: 5_000 });
  await ensureStreams(nc, [streams.control], logger);
  publisher = new JetStreamPublisher(nc);
  // an event from before the reader started: covered by startSeq, not by a requirement
  await publisher.publish(events.policyChanged, {
    eventId: randomUUID(),
    orgId: randomUUID(),
    revision: 1n,
    cause: 'rule_put',
    occurredAt: timestampNow(),
  });
  watermark = new ControlWatermark(nc, new ControlHead(nc), (r) => required.push(r), logger);
  await watermark.start();
}, 20_000);

afterAll(async () => {
  await watermark?.stop();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
});

describe('ControlWatermark', () => {
  it('starts after what was already in the stream', () => {
    expect(watermark.startSeq).toBe(1);
    expect(watermark.consumedSeq).toBe(1);
  });

  it('after a change returned, the latest sequence covers it and reading up to it yields its requirement', async () => {
    const orgId = randomUUID();
    const policy = await publisher.publish(events.policyChanged, {
      eventId: randomUUID(),
      orgId,
      revision: 7n,
      cause: 'rule_put',
      occurredAt: timestampNow(),
    });
    const grant = await publisher.publish(events.grantChanged, {
      eventId: randomUUID(),
      grantId: randomUUID(),
      orgId,
      applicationId: randomUUID(),
      userId: randomUUID(),
      connectionId: randomUUID(),
      integration: 'github',
      scopes: ['github:read:repos'],
      status: GrantStatus.REVOKED,
      revision: 2n,
      occurredAt: timestampNow(),
    });
    const latest = await watermark.latestSeq();
    expect(latest).toBeGreaterThanOrEqual(grant.seq);
    await watermark.waitConsumed(latest, 2_000);
    // the requirements were handed over before the wait resolved
    expect(required).toEqual(
      expect.arrayContaining([
        { orgId, revision: 7n },
        { orgId, controlSeq: grant.seq },
      ]),
    );
    expect(required.find((r) => r.revision === 7n)).toBeDefined();
    expect(policy.seq).toBeLessThan(grant.seq);
  });

  it('shares one round trip among concurrent callers, but only one sent after they asked', async () => {
    const head = new ControlHead(nc);
    const before = { ...head.stats };
    const answers = await Promise.all(Array.from({ length: 200 }, () => head.latestSeq()));
    expect(new Set(answers).size).toBe(1);
    // 200 concurrent questions: the first is sent at once, the rest share at most one more
    const trips = head.stats.asked + head.stats.flushed - before.asked - before.flushed;
    expect(trips).toBeGreaterThanOrEqual(1);
    expect(trips).toBeLessThanOrEqual(2);
  });

  it('keeps reading after its consumer is deleted on the server: a later change is still seen', async () => {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const c of jsm.consumers.list(streams.control.name)) names.push(c.name);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) await jsm.consumers.delete(streams.control.name, name);
    const orgId = randomUUID();
    await publisher.publish(events.policyChanged, {
      eventId: randomUUID(),
      orgId,
      revision: 9n,
      cause: 'rule_put',
      occurredAt: timestampNow(),
    });
    const latest = await watermark.latestSeq();
    // A bound on the wait, not a timing claim: the reader recreates its consumer after the gap.
    await watermark.waitConsumed(latest, 15_000);
    expect(required).toContainEqual({ orgId, revision: 9n });
  }, 30_000);

  it('fails closed when it cannot read up to a sequence in time', async () => {
    await expect(watermark.waitConsumed(watermark.consumedSeq + 1_000, 100)).rejects.toMatchObject({
      code: 'policy_unavailable',
    });
  });
});

describe('ControlHead', () => {
  const policyChanged = () =>
    publisher.publish(events.policyChanged, {
      eventId: randomUUID(),
      orgId: randomUUID(),
      revision: 1n,
      cause: 'rule_put',
      occurredAt: timestampNow(),
    });

  it('answers once per request: later checks of the request reuse the answer asked after it began', async () => {
    const head = new ControlHead(nc);
    await runWithRequestContext({ requestId: 'r1' }, async () => {
      const first = await head.latestSeq();
      await policyChanged();
      // Still a number asked after this request began: all a check of this request needs.
      expect(await head.latestSeq()).toBe(first);
    });
    // Another request (or none) asks again and sees the change.
    const before = await runWithRequestContext({ requestId: 'r2' }, () => head.latestSeq());
    await policyChanged();
    expect(await head.latestSeq()).toBe(before + 1);
  });

  it('fails with the caller-visible code when the stream is unknown, and asks again next time', async () => {
    const other = await connectNats({ url: nats.url, name: 'head-test', logger, bootTimeoutMs: 5_000 });
    try {
      const head = new ControlHead(other);
      await runWithRequestContext({ requestId: 'r3' }, async () => {
        await expect(head.latestSeq()).resolves.toEqual(expect.any(Number));
      });
      await other.close();
      await expect(head.latestSeq()).rejects.toMatchObject({ code: 'policy_unavailable' });
    } finally {
      await other.close().catch(() => undefined);
    }
  });
});
