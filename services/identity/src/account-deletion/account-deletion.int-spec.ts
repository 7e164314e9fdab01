import { fromBinary } from '@bufbuild/protobuf';
import { events, rpc, streams, TokenRevocationKind } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import * as oauth from 'oauth4webapi';

import { SessionsService } from '../accounts/sessions.service.js';
import { type OAuthTestBed, startOAuthTestBed } from '../oauth/testing/oauth-test-bed.js';

// A person deleting their account, over the bus as the gateway's portal asks: a stale session
// deletes nothing; a fresh one revokes every OAuth grant (the application's refresh token
// stops working) and removes the account, its passkeys and sessions.

let bed: OAuthTestBed;

beforeAll(async () => {
  bed = await startOAuthTestBed('identity_account_deletion');
}, 60_000);

afterAll(async () => {
  await bed?.stop();
});

const count = async (table: string) =>
  Number(
    (
      await bed.harness.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE user_id = $1`, [
        bed.userId,
      ])
    ).rows[0]?.n,
  );

/** The person-wide tokens_revoked events on CONTROL for this person. */
async function personRevocations(userId: string) {
  const jsm = await jetstreamManager(bed.harness.nc);
  const { state } = await jsm.streams.info(streams.control.name);
  const found = [];
  for (let seq = state.first_seq; seq > 0 && seq <= state.last_seq; seq += 1) {
    const stored = await jsm.streams.getMessage(streams.control.name, { seq }).catch(() => undefined);
    if (stored?.subject !== events.tokensRevoked.subject) continue;
    const event = fromBinary(events.tokensRevoked.message, stored.data);
    if (event.kind === TokenRevocationKind.USER && event.subjectId === userId) found.push(event);
  }
  return found;
}

describe('identity.v1.delete_account', () => {
  let refreshToken: string;

  beforeAll(async () => {
    const { back, verifier, state } = await bed.authorize(bed.publicClient);
    const tokens = await bed.exchange(bed.publicClient, oauth.None(), back, verifier, state);
    refreshToken = tokens.refresh_token ?? '';
    await bed.harness.db.pool.query(
      `INSERT INTO passkeys (id, user_id, credential_id, public_key, transports, device_type, backed_up)
       VALUES (gen_random_uuid(), $1, 'cred-deleted-person', '\\x00', '{}', 'multiDevice', true)`,
      [bed.userId],
    );
  });

  it('is refused with a session older than the step-up window, and nothing is deleted', async () => {
    const old = await bed.service.app
      .get(SessionsService, { strict: false })
      .open(bed.userId, new Date(Date.now() - 600_000));
    await expect(bed.rpcClient.request(rpc.identity.deleteAccount, { sessionToken: old.token })).rejects.toMatchObject({
      code: 'reauthentication_required',
    });
    expect((await bed.rpcClient.request(rpc.identity.listOAuthGrants, { userId: bed.userId })).grants).toHaveLength(1);
    expect(await count('passkeys')).toBe(1);
    expect(await personRevocations(bed.userId)).toEqual([]);
  });

  it('revokes every OAuth grant and removes the account with its passkeys and sessions', async () => {
    expect(refreshToken).not.toBe('');
    const answer = await bed.rpcClient.request(rpc.identity.deleteAccount, { sessionToken: bed.sessionToken });
    expect(answer.oauthGrantsRevoked).toBe(1);
    // Every access token of the person is refused at the gateways from now, whatever grant it came from.
    expect(await personRevocations(bed.userId)).toHaveLength(1);

    expect((await bed.rpcClient.request(rpc.identity.listOAuthGrants, { userId: bed.userId })).grants).toEqual([]);
    const refreshed = await oauth.refreshTokenGrantRequest(bed.as, bed.publicClient, oauth.None(), refreshToken, {
      [oauth.allowInsecureRequests]: true,
    });
    expect(refreshed.status).toBe(400);
    expect(await refreshed.json()).toMatchObject({ error: 'invalid_grant' });

    await expect(
      bed.rpcClient.request(rpc.identity.resolveSession, { sessionToken: bed.sessionToken }),
    ).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(await count('passkeys')).toBe(0);
    expect(await count('sessions')).toBe(0);
    const users = await bed.harness.db.pool.query('SELECT 1 FROM users WHERE id = $1', [bed.userId]);
    expect(users.rowCount).toBe(0);
    const left = await bed.harness.db.pool.query(`SELECT 1 FROM oauth_payloads WHERE payload->>'accountId' = $1`, [
      bed.userId,
    ]);
    expect(left.rowCount).toBe(0);
  });
});
