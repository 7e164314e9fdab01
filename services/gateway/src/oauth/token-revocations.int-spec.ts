import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { events, streams, TokenRevocationKind } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';

import { ControlHead } from '../policy/control-head.js';
import { TokenRevocations } from './token-revocations.js';

// The revocation reader on a private nats-server: what a gateway knows after a restart,
// and what it knows on the request right after a revocation returned.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });
const ORG = randomUUID();
const APP = randomUUID();

let nats: PrivateNats;
let nc: NatsConnection;
let publisher: JetStreamPublisher;
const readers: TokenRevocations[] = [];

const revoke = (kind: TokenRevocationKind, subjectId: string, at = new Date()) =>
  publisher.publish(events.tokensRevoked, {
    eventId: randomUUID(),
    orgId: ORG,
    kind,
    subjectId,
    revokedAt: timestampFromDate(at),
  });

async function reader(): Promise<TokenRevocations> {
  const r = new TokenRevocations(nc, new ControlHead(nc), logger);
  readers.push(r);
  await r.start();
  return r;
}

/** Retries `publish` until JetStream answers again after a restart. */
async function publishedOnceBack(publish: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await publish();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const tokenOf = (claims: { grantId?: string; userId?: string; issuedAt?: number } = {}) => ({
  grantId: claims.grantId,
  applicationId: APP,
  userId: claims.userId,
  issuedAt: claims.issuedAt ?? Math.floor(Date.now() / 1_000),
});

beforeAll(async () => {
  nats = await startPrivateNats();
  nc = await connectNats({ url: nats.url, name: 'revocations-test', logger, bootTimeoutMs: 5_000 });
  await ensureStreams(nc, [streams.control], logger);
  publisher = new JetStreamPublisher(nc);
}, 20_000);

afterAll(async () => {
  for (const r of readers) await r.stop();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
});

describe('TokenRevocations', () => {
  it('with no revocation at all, accepts tokens', async () => {
    const r = await reader();
    await expect(r.check(tokenOf({ grantId: 'g0' }), 1_000)).resolves.toBeUndefined();
  });

  it('a gateway started after a revocation still refuses the revoked tokens (replay)', async () => {
    const issuedAt = Math.floor(Date.now() / 1_000) - 5;
    await revoke(TokenRevocationKind.GRANT, 'g-replayed');
    await revoke(TokenRevocationKind.USER, 'person-1');
    const r = await reader();
    await expect(r.check(tokenOf({ grantId: 'g-replayed', issuedAt }), 1_000)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    await expect(r.check(tokenOf({ userId: 'person-1', issuedAt }), 1_000)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    await expect(r.check(tokenOf({ grantId: 'g-other', issuedAt }), 1_000)).resolves.toBeUndefined();
  });

  it('a revocation that returned is known on the next check, by every reader', async () => {
    const [a, b] = [await reader(), await reader()];
    const issuedAt = Math.floor(Date.now() / 1_000) - 5;
    await revoke(TokenRevocationKind.APPLICATION, APP);
    for (const r of [a, b])
      await expect(r.check(tokenOf({ issuedAt }), 1_000)).rejects.toMatchObject({ code: 'unauthenticated' });
    // A token issued after the revocation's second is the application's again.
    await expect(a.check(tokenOf({ issuedAt: issuedAt + 10 }), 1_000)).resolves.toBeUndefined();
  });

  it('voids what was learnt of an API key before its key or application was revoked, and nothing else', async () => {
    const r = await reader();
    const key = { apiKeyId: randomUUID(), applicationId: randomUUID() };
    const other = { apiKeyId: randomUUID(), applicationId: key.applicationId };
    await r.upToDate(1_000);
    const learnt = r.consumedSeq;
    expect(r.revokedSince(key, learnt)).toBe(false);
    await revoke(TokenRevocationKind.API_KEY, key.apiKeyId);
    await r.upToDate(1_000);
    expect(r.revokedSince(key, learnt)).toBe(true);
    expect(r.revokedSince(other, learnt)).toBe(false);
    // Asked again after the revocation: identity's answer then is what counts.
    expect(r.revokedSince(key, r.consumedSeq)).toBe(false);
    const relearnt = r.consumedSeq;
    await revoke(TokenRevocationKind.APPLICATION, key.applicationId);
    await r.upToDate(1_000);
    expect(r.revokedSince(other, relearnt)).toBe(true);
  });

  it('reads revocations up to date again once nats-server has restarted', async () => {
    const r = await reader();
    await r.upToDate(1_000);
    await nats.restart();
    // Issued before the revocation (the same second counts as before).
    const issuedAt = Math.floor(Date.now() / 1_000);
    // Identity's revocation is stored again once NATS has restored its streams.
    await publishedOnceBack(() => revoke(TokenRevocationKind.GRANT, 'g-after-restart'));
    await expect(r.check(tokenOf({ grantId: 'g-after-restart', issuedAt }), 10_000)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    // Issued after every revocation of the application in this file: only the grant's refuses.
    await expect(r.check(tokenOf({ grantId: 'g-other', issuedAt: issuedAt + 60 }), 1_000)).resolves.toBeUndefined();
  });

  it('fails closed when the stream cannot be read', async () => {
    const r = await reader();
    await nats.stop();
    // Failed by the check's own deadline (Deadlines' timer), not by the JetStream call's ~5 s timeout.
    await expect(r.check(tokenOf(), 500)).rejects.toMatchObject({
      code: 'service_unavailable',
      message: 'Token revocations could not be checked in time',
    });
  });
});
