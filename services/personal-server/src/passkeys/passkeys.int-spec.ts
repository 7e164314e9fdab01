import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { approvalChallenge, grantChallenge, passkeyChallenge } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { AppError } from '@context-gateway/errors';
import { answerRpc, type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import {
  GrantRecordSchema,
  PasskeyProofSchema,
  RegisterGrantRequestSchema,
  RevokeGrantRequestSchema,
  rpc,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { INestApplicationContext } from '@nestjs/common';

import { GrantsModule } from '../grants/grants.module.js';
import { GrantsService } from '../grants/grants.service.js';
import { startShardContext } from '../testing/shard-context.js';
import { PasskeysModule } from './passkeys.module.js';
import { PinnedPasskeysService } from './pinned-passkeys.service.js';

// Grants only the person can make: the shard's passkey pinning and signature checks against
// real Postgres and real key files, with real WebAuthn assertions from a software passkey.
// identity's side (list_user_passkeys) answers on the wire, as identity would.
const ORIGIN = 'https://gateway.example';
const migrationsDir = new URL('../../prisma/migrations', import.meta.url).pathname;
let schema: TestSchema;
let keyDir: string;
let natsServer: PrivateNats;
let nc: NatsConnection;
let app: INestApplicationContext;
let grants: GrantsService;
let passkeys: PinnedPasskeysService;
/** What identity holds: each person's passkeys. */
const identity = new Map<string, SoftAuthenticator[]>();

const ORG = randomUUID();
const APP = randomUUID();

beforeAll(async () => {
  schema = await createTestSchema({ prefix: 'ps_passkeys', migrationsDir });
  keyDir = mkdtempSync(join(tmpdir(), 'cg-ps-passkeys-'));
  // A nats-server of this file's own: the identity stub below answers a catalogued subject,
  // which another file's stub on a shared server would answer too (Jest runs files in parallel).
  natsServer = await startPrivateNats();
  nc = await connect({ servers: natsServer.url });
  answerRpc(nc, rpc.identity.listUserPasskeys, ({ userId }) => ({
    passkeys: (identity.get(userId) ?? []).map((p) => ({ credentialId: p.credentialId, publicKey: p.publicKey })),
  }));
  app = await startShardContext(
    schema,
    nc,
    { MASTER_KEY_FILE: join(keyDir, 'master.key'), GATEWAY_PUBLIC_URL: ORIGIN },
    [PasskeysModule, GrantsModule],
  );
  grants = app.get(GrantsService);
  passkeys = app.get(PinnedPasskeysService);
});

afterAll(async () => {
  await app?.close();
  await nc?.drain();
  await natsServer?.stop();
  await schema?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

/** A person whom identity knows with these passkeys. */
function person(...keys: SoftAuthenticator[]): string {
  const userId = randomUUID();
  identity.set(userId, keys);
  return userId;
}

function grantFor(userId: string, scopes = ['github:read:repos'], connectionId = randomUUID()) {
  return create(GrantRecordSchema, {
    grantId: randomUUID(),
    orgId: ORG,
    applicationId: APP,
    userId,
    connectionId,
    integration: 'github',
    scopes,
  });
}

/** `key`'s signature over the grant's terms (or `terms`, when a test signs something else). */
function consent(
  key: SoftAuthenticator,
  grant: ReturnType<typeof grantFor>,
  options: { notAfter?: Date; nonce?: string; scopes?: string[] } = {},
) {
  const nonce = options.nonce ?? randomUUID();
  const notAfter = options.notAfter ?? new Date(Date.now() + 10 * 60_000);
  const challenge = grantChallenge({
    userId: grant.userId,
    orgId: grant.orgId,
    applicationId: grant.applicationId,
    integration: grant.integration,
    scopes: options.scopes ?? grant.scopes,
    nonce,
    notAfter,
  });
  return create(PasskeyProofSchema, {
    nonce,
    notAfter: timestampFromDate(notAfter),
    assertionJson: JSON.stringify(key.assert(challenge, ORIGIN)),
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return AppError.from(error).code;
  }
}

async function grantCount(userId: string): Promise<number> {
  const { rows } = await schema.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM grants WHERE user_id = $1', [
    userId,
  ]);
  return rows[0]?.n ?? 0;
}

describe('approvals of held MCP calls (check_approval)', () => {
  const terms = (userId: string) => ({
    userId,
    orgId: ORG,
    applicationId: APP,
    capability: 'github:delete_repo',
    method: 'tools/call',
    name: 'github.delete_repo',
    callHash: 'hash-of-the-call',
  });
  /** `key`'s assertion over these terms; `options` as the authenticator would answer. */
  function approval(
    key: SoftAuthenticator,
    signed: ReturnType<typeof terms>,
    options: { userVerified?: boolean; crossOrigin?: boolean } = {},
  ) {
    const nonce = randomUUID();
    const notAfter = new Date(Date.now() + 10 * 60_000);
    const assertion = key.assert(approvalChallenge({ ...signed, nonce, notAfter }), ORIGIN, undefined, options);
    return create(PasskeyProofSchema, {
      nonce,
      notAfter: timestampFromDate(notAfter),
      assertionJson: JSON.stringify(assertion),
    });
  }

  it('verifies only a pinned passkey, user verified, in a first-party page, over exactly these terms', async () => {
    const phone = new SoftAuthenticator();
    const userId = person(phone);
    // Nothing pinned yet: an approval pins nothing (no trust on first use) and is refused.
    expect(await codeOf(passkeys.checkApproval(terms(userId), approval(phone, terms(userId))))).toBe(
      'passkey_signature_invalid',
    );
    expect((await passkeys.list(userId)).pinned).toBe(false);
    const grant = grantFor(userId);
    await grants.register(grant, consent(phone, grant));

    expect(await passkeys.checkApproval(terms(userId), approval(phone, terms(userId)))).toBe(phone.credentialId);
    // Someone with the person's session adds a passkey at identity: it is not pinned, so it approves nothing.
    const added = new SoftAuthenticator();
    identity.set(userId, [phone, added]);
    expect(await codeOf(passkeys.checkApproval(terms(userId), approval(added, terms(userId))))).toBe(
      'passkey_signature_invalid',
    );
    for (const refusedProof of [
      // No user verification (a tap, no PIN or biometric).
      approval(phone, terms(userId), { userVerified: false }),
      // Made in another site's frame.
      approval(phone, terms(userId), { crossOrigin: true }),
      // Over other terms: the same arguments read as a resource instead of a tool call.
      approval(phone, { ...terms(userId), method: 'resources/read' }),
      // ... or any other term of the statement changed.
      approval(phone, { ...terms(userId), orgId: randomUUID() }),
      approval(phone, { ...terms(userId), applicationId: randomUUID() }),
      approval(phone, { ...terms(userId), capability: 'github:archive_repo' }),
      approval(phone, { ...terms(userId), name: 'github.archive_repo' }),
      approval(phone, { ...terms(userId), callHash: 'hash-of-another-call' }),
    ])
      expect(await codeOf(passkeys.checkApproval(terms(userId), refusedProof))).toBe('passkey_signature_invalid');
    // The expiry is part of what was signed: a proof whose notAfter was moved later does not verify.
    const proof = approval(phone, terms(userId));
    const moved = create(PasskeyProofSchema, {
      ...proof,
      notAfter: timestampFromDate(new Date(Date.now() + 60 * 60_000)),
    });
    expect(await codeOf(passkeys.checkApproval(terms(userId), moved))).toBe('passkey_signature_invalid');
  });

  it("another person's pinned passkey approves nothing of this person's", async () => {
    const alicePhone = new SoftAuthenticator();
    const alice = person(alicePhone);
    const aliceGrant = grantFor(alice);
    await grants.register(aliceGrant, consent(alicePhone, aliceGrant));
    const bobPhone = new SoftAuthenticator();
    const bob = person(bobPhone);
    const bobGrant = grantFor(bob);
    await grants.register(bobGrant, consent(bobPhone, bobGrant));
    // Bob's own pinned passkey, over Alice's terms: not hers.
    expect(await codeOf(passkeys.checkApproval(terms(alice), approval(bobPhone, terms(alice))))).toBe(
      'passkey_signature_invalid',
    );
    expect(await passkeys.checkApproval(terms(alice), approval(alicePhone, terms(alice)))).toBe(
      alicePhone.credentialId,
    );
  });
});

describe('grants only the person can make', () => {
  it('registers a grant only with the person’s passkey signature over its very terms, once', async () => {
    const phone = new SoftAuthenticator();
    const userId = person(phone);
    const grant = grantFor(userId);

    // Over the bus, a registration without a proof does not pass the contract.
    expect(rpc.personalServer.registerGrant.validate?.(create(RegisterGrantRequestSchema, { grant }))).toEqual([
      { path: 'consent', message: 'must be set' },
    ]);
    expect(await codeOf(grants.register(grant, undefined))).toBe('passkey_signature_invalid');
    // Signed by a passkey that is not the person's, for other scopes, or no longer valid.
    expect(await codeOf(grants.register(grant, consent(new SoftAuthenticator(), grant)))).toBe(
      'passkey_signature_invalid',
    );
    expect(await codeOf(grants.register(grant, consent(phone, grant, { scopes: ['github:read:issues'] })))).toBe(
      'passkey_signature_invalid',
    );
    expect(await codeOf(grants.register(grant, consent(phone, grant, { notAfter: new Date(Date.now() - 1000) })))).toBe(
      'passkey_signature_invalid',
    );
    const wider = { ...grant, scopes: ['github:read:repos', 'github:read:issues'] };
    expect(await codeOf(grants.register(wider, consent(phone, grant)))).toBe('passkey_signature_invalid');
    expect(await grantCount(userId)).toBe(0);

    // Checking a consent spends nothing; registering it does, for this grant alone.
    const proof = consent(phone, grant);
    await passkeys.checkConsent({ ...grant }, proof);
    await passkeys.checkConsent({ ...grant }, proof);
    const registered = await grants.register(grant, proof);
    expect(registered.row).toMatchObject({ id: grant.grantId, state: 'active', scopes: ['github:read:repos'] });
    // A retried registration of the same grant is idempotent; the proof replayed for another grant is refused.
    expect(await codeOf(grants.register(grant, proof))).toBe('ok');
    const replay = grantFor(userId);
    expect(await codeOf(grants.register(replay, { ...proof }))).toBe('passkey_signature_invalid');
    expect(await grantCount(userId)).toBe(1);
  });

  it('pins the person’s passkeys at the first consent; a later one signs only once a pinned one endorsed it', async () => {
    const laptop = new SoftAuthenticator();
    const userId = person(laptop);
    const first = grantFor(userId);
    await grants.register(first, consent(laptop, first));
    expect(await passkeys.list(userId)).toEqual({ credentialIds: [laptop.credentialId], pinned: true });

    // identity (or whoever can write its table) adds a passkey: the Personal Server does not take it.
    const added = new SoftAuthenticator();
    identity.set(userId, [laptop, added]);
    const second = grantFor(userId);
    expect(await codeOf(grants.register(second, consent(added, second)))).toBe('passkey_signature_invalid');

    const endorsement = (signer: SoftAuthenticator, nonce = randomUUID()) => {
      const notAfter = new Date(Date.now() + 5 * 60_000);
      const challenge = passkeyChallenge({
        userId,
        credentialId: added.credentialId,
        publicKey: added.publicKey,
        nonce,
        notAfter,
      });
      return create(PasskeyProofSchema, {
        nonce,
        notAfter: timestampFromDate(notAfter),
        assertionJson: JSON.stringify(signer.assert(challenge, ORIGIN)),
      });
    };
    // A passkey cannot vouch for itself, nor can a stranger's.
    expect(await codeOf(passkeys.pin(userId, added.credentialId, endorsement(added)))).toBe(
      'passkey_signature_invalid',
    );
    expect(await codeOf(passkeys.pin(userId, added.credentialId, endorsement(new SoftAuthenticator())))).toBe(
      'passkey_signature_invalid',
    );
    const vouched = endorsement(laptop);
    expect(await passkeys.pin(userId, added.credentialId, vouched)).toBe(true);
    expect(await codeOf(passkeys.pin(userId, randomUUID().replace(/-/g, ''), vouched))).toBe('not_found');
    expect((await passkeys.list(userId)).credentialIds.sort()).toEqual(
      [laptop.credentialId, added.credentialId].sort(),
    );
    expect(await codeOf(grants.register(second, consent(added, second)))).toBe('ok');

    // A removed passkey signs nothing more.
    expect(await passkeys.unpin(userId, laptop.credentialId)).toBe(true);
    const third = grantFor(userId);
    expect(await codeOf(grants.register(third, consent(laptop, third)))).toBe('passkey_signature_invalid');
  });

  it('an endorsement is needed only once something is pinned: before the first consent there is nothing to pin into', async () => {
    const key = new SoftAuthenticator();
    const userId = person(key);
    expect(await passkeys.pin(userId, key.credentialId, create(PasskeyProofSchema, {}))).toBe(false);
    expect(await passkeys.list(userId)).toEqual({ credentialIds: [], pinned: false });
  });

  it('a passkey written in SQL signs nothing, even with a seal copied from a pinned one', async () => {
    const real = new SoftAuthenticator();
    const userId = person(real);
    const first = grantFor(userId);
    await grants.register(first, consent(real, first));
    const intruder = new SoftAuthenticator();
    await schema.pool.query(
      `INSERT INTO pinned_passkeys (user_id, credential_id, public_key, seal)
       SELECT user_id, $2, $3, seal FROM pinned_passkeys WHERE user_id = $1`,
      [userId, intruder.credentialId, intruder.publicKey],
    );
    const forged = grantFor(userId);
    expect(await codeOf(grants.register(forged, consent(intruder, forged)))).toBe('passkey_signature_invalid');
    // Swapping the public key of the pinned passkey in place fails the same way.
    await schema.pool.query('UPDATE pinned_passkeys SET public_key = $3 WHERE user_id = $1 AND credential_id = $2', [
      userId,
      real.credentialId,
      intruder.publicKey,
    ]);
    const swapped = grantFor(userId);
    const forgedByIntruder = consent(intruder, swapped);
    const assertion = JSON.parse(forgedByIntruder.assertionJson) as { id: string; rawId: string };
    assertion.id = real.credentialId;
    assertion.rawId = real.credentialId;
    expect(
      await codeOf(grants.register(swapped, { ...forgedByIntruder, assertionJson: JSON.stringify(assertion) })),
    ).toBe('passkey_signature_invalid');
    expect(await grantCount(userId)).toBe(1);
  });
  it('a retried registration is idempotent, but the same consent cannot undo a revocation or a newer consent', async () => {
    const phone = new SoftAuthenticator();
    const userId = person(phone);
    const wide = grantFor(userId, ['github:read:repos', 'github:read:issues']);
    const wideConsent = consent(phone, wide);
    await grants.register(wide, wideConsent);
    expect(await codeOf(grants.register(wide, wideConsent))).toBe('ok');
    // The person revokes: the old signed consent, replayed, does not bring the grant back.
    await grants.revoke(create(RevokeGrantRequestSchema, { grantId: wide.grantId, userId }));
    expect(await codeOf(grants.register(wide, wideConsent))).toBe('passkey_signature_invalid');
    // A newer, narrower consent by the same app on the same connection (the same grant id, as the broker keeps it).
    const narrow = { ...wide, scopes: ['github:read:repos'] };
    await grants.register(narrow, consent(phone, narrow));
    expect(await codeOf(grants.register(wide, wideConsent))).toBe('passkey_signature_invalid');
    const { rows } = await schema.pool.query<{ scopes: string[]; state: string }>(
      'SELECT scopes, state FROM grants WHERE id = $1',
      [wide.grantId],
    );
    expect(rows).toEqual([{ scopes: ['github:read:repos'], state: 'active' }]);
  });

  it('pins nothing for a first consent that does not verify, and pins only what identity holds for the signer', async () => {
    const key = new SoftAuthenticator();
    const userId = person(key);
    const grant = grantFor(userId);
    // A junk signature for a person never pinned: refused, and nothing is fixed as trusted.
    expect(await codeOf(passkeys.checkConsent(grant, consent(new SoftAuthenticator(), grant)))).toBe(
      'passkey_signature_invalid',
    );
    const tampered = consent(key, grant);
    expect(await codeOf(passkeys.checkConsent({ ...grant, scopes: ['github:read:issues'] }, tampered))).toBe(
      'passkey_signature_invalid',
    );
    expect(await passkeys.list(userId)).toEqual({ credentialIds: [], pinned: false });
    expect(await codeOf(passkeys.checkConsent(grant, tampered))).toBe('ok');
    expect(await passkeys.list(userId)).toEqual({ credentialIds: [key.credentialId], pinned: true });
  });

  it('trust reset in SQL is not trust on first use again; a passkey identity no longer holds signs nothing', async () => {
    const first = new SoftAuthenticator();
    const userId = person(first);
    const grant = grantFor(userId);
    await grants.register(grant, consent(first, grant));
    // Someone with SQL access clears the pins and the flag, and adds a key of theirs at identity.
    const intruder = new SoftAuthenticator();
    identity.set(userId, [first, intruder]);
    await schema.pool.query('DELETE FROM pinned_passkeys WHERE user_id = $1', [userId]);
    await schema.pool.query('UPDATE personal_servers SET passkeys_pinned_at = NULL WHERE user_id = $1', [userId]);
    const forged = grantFor(userId);
    expect(await codeOf(grants.register(forged, consent(intruder, forged)))).toBe('passkey_signature_invalid');
    expect(await passkeys.list(userId)).toEqual({ credentialIds: [], pinned: false });

    // A pinned passkey the person removed at identity (its unpinning lost) signs nothing.
    const other = new SoftAuthenticator();
    const second = person(other, new SoftAuthenticator());
    const g1 = grantFor(second);
    await grants.register(g1, consent(other, g1));
    identity.set(
      second,
      identity.get(second)!.filter((p) => p !== other),
    );
    const g2 = grantFor(second);
    expect(await codeOf(grants.register(g2, consent(other, g2)))).toBe('passkey_signature_invalid');
  });

  it('never unpins the last trusted passkey, and refuses a signature made in another site’s frame', async () => {
    const only = new SoftAuthenticator();
    const userId = person(only);
    const grant = grantFor(userId);
    await grants.register(grant, consent(only, grant));
    expect(await codeOf(passkeys.unpin(userId, only.credentialId))).toBe('conflict');
    expect(await passkeys.unpin(userId, 'not-pinned')).toBe(false);

    const framed = grantFor(userId);
    const proof = consent(only, framed);
    const assertion = JSON.parse(proof.assertionJson) as { response: { clientDataJSON: string } };
    const clientData = JSON.parse(Buffer.from(assertion.response.clientDataJSON, 'base64url').toString('utf8')) as {
      crossOrigin: boolean;
    };
    clientData.crossOrigin = true;
    assertion.response.clientDataJSON = Buffer.from(JSON.stringify(clientData)).toString('base64url');
    expect(await codeOf(grants.register(framed, { ...proof, assertionJson: JSON.stringify(assertion) }))).toBe(
      'passkey_signature_invalid',
    );
  });
});
