import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { provisionJetStream } from '@context-gateway/messaging';
import { events, rpc, streams, TokenRevocationKind } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import * as oauth from 'oauth4webapi';
import pino from 'pino';

import { type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';
import { TOKEN_REVOCATION_SWEEP_MS, TokenRevocationEvents } from './token-revocation-events.js';

// A revocation the event stream cannot take at that moment is kept, not lost: the revoking
// call answers service_unavailable (it is not in force at the gateways yet), the event stays
// in identity's outbox, and the sweep publishes it with its original time once the stream is
// back. The stream is made unavailable for real: CONTROL is deleted, then provisioned again.

let bed: OAuthTestBed;

beforeAll(async () => {
  bed = await startOAuthTestBed('identity_revocation_outbox');
}, 60_000);

afterAll(async () => {
  await bed?.stop();
});

const outbox = async () =>
  (
    await bed.harness.db.pool.query<{ event_id: string; subject_id: string; revoked_at: Date }>(
      'SELECT event_id, subject_id, revoked_at FROM token_revocation_outbox ORDER BY created_at',
    )
  ).rows;

/** Every tokens_revoked event on CONTROL for this subject. */
async function announced(subjectId: string) {
  const jsm = await jetstreamManager(bed.harness.nc);
  const found = [];
  const info = await jsm.streams.info(streams.control.name);
  for (let seq = info.state.first_seq; seq > 0 && seq <= info.state.last_seq; seq += 1) {
    const stored = await jsm.streams.getMessage(streams.control.name, { seq }).catch(() => undefined);
    if (stored?.subject !== events.tokensRevoked.subject) continue;
    const event = fromBinary(events.tokensRevoked.message, stored.data);
    if (event.subjectId === subjectId) found.push(event);
  }
  return found;
}

async function sweptEmpty(revocations: TokenRevocationEvents): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    await revocations.sweep();
    if ((await outbox()).length === 0) return;
    if (Date.now() > deadline) throw new Error('the outbox did not empty within 15 s');
  }
}

describe('tokens_revoked through the outbox', () => {
  it('publishes at once and keeps nothing when the stream takes it', async () => {
    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const tokens = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    const claims = await oauth.validateJwtAccessToken(bed.as, bed.bearer(tokens.access_token), bed.resource, {
      [oauth.allowInsecureRequests]: true,
    });
    const grantId = claims['grant_id'] as string;
    await bed.rpcClient.request(rpc.identity.revokeOAuthGrant, { userId: bed.userId, grantId });
    expect(await outbox()).toEqual([]);
    expect(await announced(grantId)).toEqual([expect.objectContaining({ kind: TokenRevocationKind.GRANT })]);
  });

  it('keeps a revocation the stream could not take, answers service_unavailable, and publishes it later with its time', async () => {
    const revocations = bed.service.app.get(TokenRevocationEvents, { strict: false });
    const jsm = await jetstreamManager(bed.harness.nc);
    await jsm.streams.delete(streams.control.name);
    const before = Date.now();
    await expect(
      revocations.revoked(bed.orgId, TokenRevocationKind.APPLICATION, 'app-while-down'),
    ).rejects.toMatchObject({ code: 'service_unavailable' });
    const [kept, ...others] = await outbox();
    expect(others).toEqual([]);
    expect(kept?.subject_id).toBe('app-while-down');
    expect(kept?.revoked_at.getTime()).toBeGreaterThanOrEqual(before - 5);

    // A sweep while the stream is still away changes nothing.
    await revocations.sweep();
    expect((await outbox()).map((row) => row.event_id)).toEqual([kept?.event_id]);

    await provisionJetStream(bed.harness.nc, pino({ level: 'silent' }));
    // The service's own timer would do this within TOKEN_REVOCATION_SWEEP_MS; the test does not
    // wait for it. A timer sweep that began while the stream was away may still be running (a
    // call joins it), so sweep until the outbox is empty.
    expect(TOKEN_REVOCATION_SWEEP_MS).toBeLessThanOrEqual(15_000);
    await sweptEmpty(revocations);
    const [event, ...repeats] = await announced('app-while-down');
    expect(repeats).toEqual([]);
    expect(event).toMatchObject({ eventId: kept?.event_id, orgId: bed.orgId, kind: TokenRevocationKind.APPLICATION });
    // The original time, not the sweep's: tokens issued between the revocation and now stay valid.
    expect(timestampDate(event!.revokedAt!).getTime()).toBe(kept?.revoked_at.getTime());
  }, 30_000);

  it('stores nothing and publishes nothing when the revocation itself rolls back', async () => {
    const revocations = bed.service.app.get(TokenRevocationEvents, { strict: false });
    await expect(
      revocations.revoke(
        async (tx) => {
          await tx.tokenRevocationOutbox.count();
          throw new Error('the change failed');
        },
        () => ({ orgId: bed.orgId, kind: TokenRevocationKind.APPLICATION, subjectId: 'app-rolled-back' }),
      ),
    ).rejects.toThrow('the change failed');
    expect(await outbox()).toEqual([]);
    expect(await announced('app-rolled-back')).toEqual([]);
  });

  it('leaves rows another replica has claimed to that replica, then publishes them once free', async () => {
    const revocations = bed.service.app.get(TokenRevocationEvents, { strict: false });
    await bed.harness.db.pool.query(
      // Old enough for any sweep (younger rows are left to the request that wrote them).
      `INSERT INTO token_revocation_outbox (event_id, org_id, kind, subject_id, revoked_at, created_at)
       VALUES (gen_random_uuid(), $1, $2, 'app-claimed-elsewhere', now(), now() - interval '1 minute')`,
      [bed.orgId, TokenRevocationKind.APPLICATION],
    );
    // Another replica's sweep: its transaction holds the row.
    const other = await bed.harness.db.pool.connect();
    try {
      await other.query('BEGIN');
      const held = await other.query('SELECT event_id FROM token_revocation_outbox FOR UPDATE');
      expect(held.rowCount).toBe(1);
      await revocations.sweep();
      expect(await announced('app-claimed-elsewhere')).toEqual([]);
      expect(await outbox()).toHaveLength(1);
      await other.query('ROLLBACK');
    } finally {
      other.release();
    }
    await sweptEmpty(revocations);
    expect(await announced('app-claimed-elsewhere')).toHaveLength(1);
  }, 30_000);
});
