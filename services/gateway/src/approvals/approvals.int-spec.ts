import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { approvalChallenge } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { ApprovalsRepository } from './approvals.repository.js';
import { type ApprovalPasskeys, ApprovalsService, argumentsHash, type HeldCall } from './approvals.service.js';

// The approval store against the gateway's real `mcp_approvals` (its migrations), with a
// software passkey signing what a person signs on the approval page.

const PUBLIC_URL = 'https://gateway.example.test';
const TTL_MS = 10 * 60_000;

let harness: ServiceHarness;
let repository: ApprovalsRepository;
const clock = new TestClock(new Date());
const alice = { userId: randomUUID(), passkey: new SoftAuthenticator() };
const bob = { userId: randomUUID(), passkey: new SoftAuthenticator() };
const passkeys: ApprovalPasskeys = {
  passkeys: (userId) =>
    Promise.resolve(
      [alice, bob]
        .filter((p) => p.userId === userId)
        .map((p) => ({ credentialId: p.passkey.credentialId, publicKey: p.passkey.publicKey })),
    ),
};
let service: ApprovalsService;

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_approvals',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  repository = new ApprovalsRepository(harness.db.pool);
  service = new ApprovalsService(repository, passkeys, clock, { publicUrl: PUBLIC_URL, ttlMs: TTL_MS });
});

afterAll(async () => {
  await harness.stop();
});

const orgId = randomUUID();
const applicationId = randomUUID();
const call = (args: Record<string, unknown>, userId = alice.userId): HeldCall => ({
  orgId,
  applicationId,
  userId,
  capability: 'github:delete_repo',
  arguments: args,
  tool: { name: 'delete_repo', annotations: { destructiveHint: true } },
});

/** What Alice's passkey signs on the page: the request's challenge, as the browser would answer it. */
async function signedBy(passkey: SoftAuthenticator, approvalId: string, userId = alice.userId) {
  const { challenge } = await service.view(approvalId, userId);
  return JSON.stringify(passkey.assert(challenge, PUBLIC_URL));
}

async function approved(args: Record<string, unknown>) {
  const held = await service.settle(call(args));
  if (held.state !== 'pending') throw new Error(`expected a pending request, got ${held.state}`);
  await service.decide(held.approvalId, alice.userId, 'approve', await signedBy(alice.passkey, held.approvalId));
  return held.approvalId;
}

describe('approvals of held tool calls', () => {
  it('holds a call until its person approves it with a passkey, then lets exactly one retry through', async () => {
    const args = { repo: 'acme/old', confirm: true };
    const held = await service.settle(call(args));
    expect(held).toMatchObject({ state: 'pending', url: `${PUBLIC_URL}/v1/approvals/${held.approvalId}` });
    // A retry before the person answers is the same request (no pile of links).
    expect(await service.settle(call({ confirm: true, repo: 'acme/old' }))).toEqual(held);
    await service.decide(held.approvalId, alice.userId, 'approve', await signedBy(alice.passkey, held.approvalId));
    expect(await service.settle(call(args))).toEqual({ state: 'approved', approvalId: held.approvalId });
    // Single use: the next identical call waits for a new approval.
    const again = await service.settle(call(args));
    expect(again.state).toBe('pending');
    expect(again.approvalId).not.toBe(held.approvalId);
    const row = await repository.find(held.approvalId);
    expect(row).toMatchObject({ status: 'approved', signedBy: alice.passkey.credentialId });
    expect(row?.consumedAt).toBeInstanceOf(Date);
  });

  it('an approval covers only the arguments it was given: other arguments need their own', async () => {
    const approvalId = await approved({ repo: 'acme/a' });
    const other = await service.settle(call({ repo: 'acme/b' }));
    expect(other).toMatchObject({ state: 'pending' });
    expect(other.approvalId).not.toBe(approvalId);
    // ...and the approved one is still there for the call it names.
    expect(await service.settle(call({ repo: 'acme/a' }))).toEqual({ state: 'approved', approvalId });
  });

  it('a signature over another request, a replay, another person and a late answer are refused and change nothing', async () => {
    const a = await service.settle(call({ repo: 'acme/x' }));
    const b = await service.settle(call({ repo: 'acme/y' }));
    // Alice's signature over request b does not approve request a.
    const forB = await signedBy(alice.passkey, b.approvalId);
    await expect(service.decide(a.approvalId, alice.userId, 'approve', forB)).rejects.toMatchObject({
      code: 'passkey_signature_invalid',
    });
    // Bob may neither see nor decide Alice's request, not even with his own passkey.
    await expect(service.view(a.approvalId, bob.userId)).rejects.toMatchObject({ code: 'approval_other_person' });
    const { challenge } = await service.view(a.approvalId, alice.userId);
    await expect(
      service.decide(a.approvalId, bob.userId, 'approve', JSON.stringify(bob.passkey.assert(challenge, PUBLIC_URL))),
    ).rejects.toMatchObject({ code: 'approval_other_person' });
    // Bob's passkey is not Alice's, even over the right challenge.
    await expect(
      service.decide(a.approvalId, alice.userId, 'approve', JSON.stringify(bob.passkey.assert(challenge, PUBLIC_URL))),
    ).rejects.toMatchObject({ code: 'passkey_signature_invalid' });
    // Signed at another origin (a phishing page): refused.
    await expect(
      service.decide(
        a.approvalId,
        alice.userId,
        'approve',
        JSON.stringify(alice.passkey.assert(challenge, 'https://evil.example')),
      ),
    ).rejects.toMatchObject({ code: 'passkey_signature_invalid' });
    expect(await repository.find(a.approvalId)).toMatchObject({ status: 'pending', decidedAt: null });

    // Approved once; the same signed post again is a replay.
    const signature = JSON.stringify(alice.passkey.assert(challenge, PUBLIC_URL));
    await service.decide(a.approvalId, alice.userId, 'approve', signature);
    await expect(service.decide(a.approvalId, alice.userId, 'approve', signature)).rejects.toMatchObject({
      code: 'approval_already_decided',
    });

    // Expiry: a request nobody answered in time is refused, and a retry asks afresh.
    const bSignature = JSON.stringify(alice.passkey.assert(challenge, PUBLIC_URL));
    clock.advance(TTL_MS + 1);
    await expect(service.decide(b.approvalId, alice.userId, 'approve', bSignature)).rejects.toMatchObject({
      code: 'approval_expired',
    });
    await expect(service.view(b.approvalId, alice.userId)).rejects.toMatchObject({ code: 'approval_expired' });
    // An approval unused until its expiry is worth nothing either.
    const late = await service.settle(call({ repo: 'acme/x' }));
    expect(late.state).toBe('pending');
    expect(late.approvalId).not.toBe(a.approvalId);
    await expect(service.view(randomUUID(), alice.userId)).rejects.toMatchObject({ code: 'approval_not_found' });
  });

  it('a declined call fails once, and the statement hashes exactly the call', async () => {
    const held = await service.settle(call({ repo: 'acme/keep' }));
    await service.decide(held.approvalId, alice.userId, 'decline');
    expect(await service.settle(call({ repo: 'acme/keep' }))).toEqual({
      state: 'declined',
      approvalId: held.approvalId,
    });
    expect((await service.settle(call({ repo: 'acme/keep' }))).state).toBe('pending');
    const row = await repository.find(held.approvalId);
    expect(row?.argumentsHash).toBe(argumentsHash({ repo: 'acme/keep' }));
    // The page's challenge is the statement of exactly this request (its terms, nonce and expiry).
    const fresh = await service.settle(call({ repo: 'acme/keep' }));
    const stored = await repository.find(fresh.approvalId);
    if (!stored) throw new Error('the request was not stored');
    expect((await service.view(fresh.approvalId, alice.userId)).challenge).toBe(
      approvalChallenge({ ...stored, notAfter: stored.expiresAt }),
    );
  });
});
