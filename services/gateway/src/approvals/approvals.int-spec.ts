import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { approvalChallenge, type ApprovalStatement } from '@context-gateway/crypto';
import { SoftAuthenticator } from '@context-gateway/crypto/testing';
import { AppError } from '@context-gateway/errors';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { type AuthenticationResponseJSON, verifyAuthenticationResponse } from '@simplewebauthn/server';

import type { AuditIntent, AuditRecord } from '../audit/audit-recorder.js';
import { ApprovalsRepository } from './approvals.repository.js';
import { type ApprovalPasskeys, ApprovalsService, callHash, type HeldCall } from './approvals.service.js';

// The approval store against the gateway's real `mcp_approvals` (its migrations), with a
// software passkey signing what a person signs on the approval page. The Personal Server's
// side (ps.v1.check_approval: pinned passkeys only, user verification, first-party origin)
// is stood in for by the same WebAuthn verification over the same statement; its own
// refusals are tested in services/personal-server/src/passkeys/passkeys.int-spec.ts.

const PUBLIC_URL = 'https://gateway.example.test';
const TTL_MS = 10 * 60_000;

let harness: ServiceHarness;
let repository: ApprovalsRepository;
const clock = new TestClock(new Date());
const alice = { userId: randomUUID(), passkey: new SoftAuthenticator() };
const bob = { userId: randomUUID(), passkey: new SoftAuthenticator() };
/** What each person's Personal Server pinned. */
const pinned = new Map<string, SoftAuthenticator[]>([alice, bob].map((p) => [p.userId, [p.passkey]]));
const passkeys: ApprovalPasskeys = {
  trusted: (userId) => Promise.resolve((pinned.get(userId) ?? []).map((p) => p.credentialId)),
  async verify(statement: ApprovalStatement, assertionJson: string) {
    const refused = () => new AppError('passkey_signature_invalid', 'refused');
    const response = JSON.parse(assertionJson) as AuthenticationResponseJSON;
    const key = (pinned.get(statement.userId) ?? []).find((p) => p.credentialId === response.id);
    if (!key) throw refused();
    const verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: approvalChallenge(statement),
      expectedOrigin: PUBLIC_URL,
      expectedRPID: new URL(PUBLIC_URL).hostname,
      credential: { id: key.credentialId, publicKey: new Uint8Array(key.publicKey), counter: 0 },
      requireUserVerification: true,
    }).catch(() => ({ verified: false }));
    if (!verified.verified) throw refused();
    return key.credentialId;
  },
};
/** What the audit trail received. */
const audited: { phase: 'intent' | 'outcome'; record: Partial<AuditRecord> }[] = [];
const recorder = {
  recordIntent: (record: Omit<AuditRecord, 'outcome'>) => {
    audited.push({ phase: 'intent', record });
    return Promise.resolve({ eventId: randomUUID(), record, startedAt: 0 } satisfies AuditIntent);
  },
  recordOutcome: (intent: AuditIntent, outcome: { outcome: AuditRecord['outcome']; errorCode?: string }) => {
    audited.push({ phase: 'outcome', record: { ...intent.record, ...outcome } });
    return Promise.resolve(randomUUID());
  },
};
let service: ApprovalsService;

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_approvals',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  repository = new ApprovalsRepository(harness.db.pool);
  service = new ApprovalsService(repository, passkeys, recorder, clock, { publicUrl: PUBLIC_URL, ttlMs: TTL_MS });
});

afterAll(async () => {
  await harness.stop();
});

beforeEach(() => {
  audited.length = 0;
});

const orgId = randomUUID();
const applicationId = randomUUID();
const call = (args: Record<string, unknown>, extra: Partial<HeldCall> = {}): HeldCall => ({
  orgId,
  applicationId,
  userId: alice.userId,
  capability: 'github:delete_repo',
  method: 'tools/call',
  name: 'github.delete_repo',
  arguments: args,
  tool: { annotations: { destructiveHint: true } },
  ...extra,
});

/** What Alice's passkey signs on the page: the request's challenge, as the browser would answer it. */
async function signedBy(passkey: SoftAuthenticator, approvalId: string, userId = alice.userId) {
  const { challenge } = await service.view(approvalId, userId);
  return JSON.stringify(passkey.assert(challenge, PUBLIC_URL));
}

async function pending(held: HeldCall) {
  const settled = await service.settle(held);
  if (settled.state !== 'pending') throw new Error(`expected a pending request, got ${settled.state}`);
  return settled;
}

async function approved(held: HeldCall) {
  const { approvalId } = await pending(held);
  await service.decide(approvalId, alice.userId, 'approve', await signedBy(alice.passkey, approvalId));
  return approvalId;
}

describe('approvals of held MCP calls', () => {
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

  it('a call whose name the Personal Server could never check is refused at once, not held', async () => {
    const long = `res://${'x'.repeat(2_100)}`;
    await expect(service.settle(call({}, { method: 'resources/read', name: long }))).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });

  it("records the person's answer in the audit trail: actor, request, decision and the passkey that signed", async () => {
    const approvalId = await approved(call({ repo: 'acme/audited' }));
    const declined = await pending(call({ repo: 'acme/kept' }));
    await service.decide(declined.approvalId, alice.userId, 'decline');
    const person = { action: 'consent', actorKind: 'user_session', actorId: alice.userId, userId: alice.userId };
    expect(audited.map((e) => e.phase)).toEqual(['intent', 'outcome', 'intent', 'outcome']);
    expect(audited[1]?.record).toMatchObject({
      ...person,
      approvalId,
      capability: 'github:delete_repo',
      outcome: 'allowed',
      resource: `passkey:${alice.passkey.credentialId}`,
    });
    expect(audited[3]?.record).toMatchObject({
      ...person,
      approvalId: declined.approvalId,
      outcome: 'denied',
      errorCode: 'approval_declined',
    });
    expect(audited[3]?.record.resource).toBeUndefined();
    // A refused signature is in the trail too, as an error, and decides nothing.
    audited.length = 0;
    const other = await pending(call({ repo: 'acme/refused' }));
    await expect(
      service.decide(other.approvalId, alice.userId, 'approve', await signedBy(bob.passkey, other.approvalId)),
    ).rejects.toMatchObject({ code: 'passkey_signature_invalid' });
    expect(audited.at(-1)?.record).toMatchObject({ outcome: 'error', errorCode: 'passkey_signature_invalid' });
  });

  it('an approval covers only the call it was given: other arguments, another operation, another app or org', async () => {
    const args = { repo: 'acme/a' };
    const approvalId = await approved(call(args));
    for (const other of [
      call({ repo: 'acme/b' }),
      // The same capability and arguments through another MCP operation or name.
      call(args, { method: 'resources/read' }),
      call(args, { name: 'github.tools' }),
      // The same call by another application of the org, or in another org.
      call(args, { applicationId: randomUUID() }),
      call(args, { orgId: randomUUID() }),
    ]) {
      const settled = await service.settle(other);
      expect(settled).toMatchObject({ state: 'pending' });
      expect(settled.approvalId).not.toBe(approvalId);
    }
    // ...and the approved one is still there for the call it names.
    expect(await service.settle(call(args))).toEqual({ state: 'approved', approvalId });
  });

  it('two retries racing for one approval: exactly one runs, the other is held again', async () => {
    const args = { repo: 'acme/raced' };
    const approvalId = await approved(call(args));
    const settled = await Promise.all(Array.from({ length: 8 }, () => service.settle(call(args))));
    expect(settled.filter((s) => s.state === 'approved')).toEqual([{ state: 'approved', approvalId }]);
    for (const s of settled.filter((x) => x.state !== 'approved')) expect(s.state).toBe('pending');
  });

  it('a signature over another request, another person, a replay and a weak assertion are refused', async () => {
    const a = await pending(call({ repo: 'acme/x' }));
    const b = await pending(call({ repo: 'acme/y' }));
    // Alice's signature over request b does not approve request a.
    const forB = await signedBy(alice.passkey, b.approvalId);
    await expect(service.decide(a.approvalId, alice.userId, 'approve', forB)).rejects.toMatchObject({
      code: 'passkey_signature_invalid',
    });
    // Bob may neither see nor decide Alice's request: to him it does not exist.
    await expect(service.view(a.approvalId, bob.userId)).rejects.toMatchObject({ code: 'approval_not_found' });
    const { challenge } = await service.view(a.approvalId, alice.userId);
    await expect(
      service.decide(a.approvalId, bob.userId, 'approve', JSON.stringify(bob.passkey.assert(challenge, PUBLIC_URL))),
    ).rejects.toMatchObject({ code: 'approval_not_found' });
    // Bob's passkey is not Alice's, even over the right challenge.
    await expect(
      service.decide(a.approvalId, alice.userId, 'approve', JSON.stringify(bob.passkey.assert(challenge, PUBLIC_URL))),
    ).rejects.toMatchObject({ code: 'passkey_signature_invalid' });
    // Signed at another origin (a phishing page), or without user verification: refused.
    for (const weak of [
      alice.passkey.assert(challenge, 'https://evil.example'),
      alice.passkey.assert(challenge, PUBLIC_URL, undefined, { userVerified: false }),
    ])
      await expect(service.decide(a.approvalId, alice.userId, 'approve', JSON.stringify(weak))).rejects.toMatchObject({
        code: 'passkey_signature_invalid',
      });
    expect(await repository.find(a.approvalId)).toMatchObject({ status: 'pending', decidedAt: null });

    // Approved once; the same signed post again is a replay.
    const signature = JSON.stringify(alice.passkey.assert(challenge, PUBLIC_URL));
    await service.decide(a.approvalId, alice.userId, 'approve', signature);
    await expect(service.decide(a.approvalId, alice.userId, 'approve', signature)).rejects.toMatchObject({
      code: 'approval_already_decided',
    });
  });

  it('a valid signature that arrives late is refused, and an unused approval expires with its request', async () => {
    const late = await pending(call({ repo: 'acme/late' }));
    // Signed in time over this very request's challenge, posted after the expiry.
    const signature = await signedBy(alice.passkey, late.approvalId);
    const unused = await approved(call({ repo: 'acme/unused' }));
    clock.advance(TTL_MS + 1);
    await expect(service.decide(late.approvalId, alice.userId, 'approve', signature)).rejects.toMatchObject({
      code: 'approval_expired',
    });
    expect(await repository.find(late.approvalId)).toMatchObject({ status: 'pending', decidedAt: null });
    await expect(service.view(late.approvalId, alice.userId)).rejects.toMatchObject({ code: 'approval_expired' });
    // An approval unused until its expiry is worth nothing either: the retry asks afresh.
    const retried = await service.settle(call({ repo: 'acme/unused' }));
    expect(retried.state).toBe('pending');
    expect(retried.approvalId).not.toBe(unused);
    await expect(service.view(randomUUID(), alice.userId)).rejects.toMatchObject({ code: 'approval_not_found' });
  });

  it('a declined call fails once, and the statement is exactly the call', async () => {
    const held = await pending(call({ repo: 'acme/keep' }));
    await service.decide(held.approvalId, alice.userId, 'decline');
    expect(await service.settle(call({ repo: 'acme/keep' }))).toEqual({
      state: 'declined',
      approvalId: held.approvalId,
    });
    expect((await service.settle(call({ repo: 'acme/keep' }))).state).toBe('pending');
    const row = await repository.find(held.approvalId);
    expect(row).toMatchObject({
      method: 'tools/call',
      name: 'github.delete_repo',
      callHash: callHash({ method: 'tools/call', name: 'github.delete_repo', arguments: { repo: 'acme/keep' } }),
    });
    // The page's challenge is the statement of exactly this request (its terms, nonce and expiry).
    const fresh = await service.settle(call({ repo: 'acme/keep' }));
    const stored = await repository.find(fresh.approvalId);
    if (!stored) throw new Error('the request was not stored');
    expect(await service.view(fresh.approvalId, alice.userId)).toMatchObject({
      challenge: approvalChallenge({ ...stored, notAfter: stored.expiresAt }),
      credentialIds: [alice.passkey.credentialId],
    });
  });
});
