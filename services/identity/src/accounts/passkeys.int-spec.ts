import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { ApiKeysRepository } from '../api-keys/api-keys.repository.js';
import type { Env } from '../env.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { sha256 } from '../secrets.js';
import { AccountSecurityService } from './account-security.service.js';
import { ChallengesRepository, SessionsRepository, UsersRepository } from './accounts.repository.js';
import { PasskeysService } from './passkeys.service.js';
import { SessionsService } from './sessions.service.js';

// The ceremony and session rules that a browser test cannot reach in reasonable time
// (expiry) or cannot race (two requests at the same instant), against real Postgres.
let schema: TestSchema;
let db: PrismaClient;
let passkeys: PasskeysService;
let sessions: SessionsService;
let challenges: ChallengesRepository;
let users: UsersRepository;
let security: AccountSecurityService;
/** Expiry is tested by moving this clock, never by waiting. */
const clock = new TestClock();
const env = {
  GATEWAY_PUBLIC_URL: 'https://gateway.example',
  SESSION_TTL_SECONDS: 3_600,
  WEBAUTHN_CHALLENGE_TTL_SECONDS: 60,
  PERSON_STEP_UP_MAX_AGE_MS: 300_000,
} as Env;

beforeAll(async () => {
  schema = await createTestSchema({
    prefix: 'identity_passkeys',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  db = new PrismaClient({ adapter: createPrismaAdapter(schema.pool, schema.schema) });
  users = new UsersRepository(db);
  challenges = new ChallengesRepository(db);
  sessions = new SessionsService(new SessionsRepository(db), env, clock);
  passkeys = new PasskeysService(users, challenges, sessions, env, clock);
  security = new AccountSecurityService(sessions, new SessionsRepository(db), users, env, clock);
});

afterAll(async () => {
  await db?.$disconnect();
  await schema?.drop();
});

const anyResponse = JSON.stringify({
  id: 'x',
  rawId: 'x',
  type: 'public-key',
  response: {},
  clientExtensionResults: {},
});

describe('passkey ceremonies', () => {
  it('offer options for the gateway as relying party, with user verification required', async () => {
    const started = await passkeys.startRegistration({ displayName: 'Ada', sessionToken: '' });
    const options = JSON.parse(started.optionsJson) as {
      rp: { id: string };
      authenticatorSelection: { userVerification: string; residentKey: string };
      challenge: string;
    };
    expect(options.rp.id).toBe('gateway.example');
    expect(options.authenticatorSelection).toMatchObject({ userVerification: 'required', residentKey: 'required' });
    expect(started.ceremonyToken).toMatch(/^cg_wc_/);
    // identity keeps only the token's hash
    const row = await db.webauthnChallenge.findUnique({ where: { ceremonyTokenHash: sha256(started.ceremonyToken) } });
    expect(row).toMatchObject({ purpose: 'registration', challenge: options.challenge, newUser: true });
  });

  it('refuse an expired challenge', async () => {
    const started = await passkeys.startAuthentication();
    expect(started.expiresAt).toEqual(new Date(clock.now() + 60_000));
    clock.advance(61_000);
    await expect(
      passkeys.finishAuthentication({ ceremonyToken: started.ceremonyToken, responseJson: anyResponse }),
    ).rejects.toMatchObject({ code: 'webauthn_challenge_invalid' });
  });

  it('refuse a challenge used for the other purpose', async () => {
    const registration = await passkeys.startRegistration({ displayName: 'Eve', sessionToken: '' });
    await expect(
      passkeys.finishAuthentication({ ceremonyToken: registration.ceremonyToken, responseJson: anyResponse }),
    ).rejects.toMatchObject({ code: 'webauthn_challenge_invalid' });
  });

  it('use a challenge once, even when the first answer failed verification', async () => {
    const started = await passkeys.startAuthentication();
    await expect(
      passkeys.finishAuthentication({ ceremonyToken: started.ceremonyToken, responseJson: anyResponse }),
    ).rejects.toMatchObject({ code: 'webauthn_verification_failed' });
    await expect(
      passkeys.finishAuthentication({ ceremonyToken: started.ceremonyToken, responseJson: anyResponse }),
    ).rejects.toMatchObject({ code: 'webauthn_challenge_invalid' });
  });

  it('hand a challenge to exactly one of several simultaneous answers', async () => {
    const started = await passkeys.startAuthentication();
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        challenges.consume(sha256(started.ceremonyToken), 'authentication', clock.date()),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('move a signature counter by compare-and-set: one of two racing sign-ins wins', async () => {
    const user = await users.createUser({ displayName: 'Racer', webauthnUserId: 'handle-racer' });
    const passkey = await users.addPasskey({
      userId: user.id,
      credentialId: 'cred-racer',
      publicKey: new Uint8Array([1]),
      signCount: 5n,
      transports: ['internal'],
      deviceType: 'singleDevice',
      backedUp: false,
    });
    const now = clock.date();
    const won = await Promise.all([
      users.advanceCounter(passkey.id, 5n, 6n, now),
      users.advanceCounter(passkey.id, 5n, 6n, now),
    ]);
    expect(won.filter(Boolean)).toHaveLength(1);
    expect((await db.passkey.findUniqueOrThrow({ where: { id: passkey.id } })).signCount).toBe(6n);
  });
});

describe('adding a passkey to an existing account', () => {
  const registrationFor = async (sessionToken: string) => {
    const started = await passkeys.startRegistration({ displayName: 'ignored', sessionToken });
    return db.webauthnChallenge.findUniqueOrThrow({ where: { ceremonyTokenHash: sha256(started.ceremonyToken) } });
  };

  it("binds the ceremony to the account of the caller's own fresh session", async () => {
    const owner = await users.createUser({ displayName: 'Owner', webauthnUserId: 'handle-owner' });
    const { token } = await sessions.open(owner.id, clock.date());
    clock.advance(60_000);
    expect(await registrationFor(token)).toMatchObject({ userId: owner.id, newUser: false, displayName: 'Owner' });
  });

  it('is refused with a forged, signed-out or expired session token: never a bare user id', async () => {
    const victim = await users.createUser({ displayName: 'Victim', webauthnUserId: 'handle-victim' });
    // A caller that knows the victim's id but holds no session of theirs.
    await expect(registrationFor(`cg_ss_${'A'.repeat(43)}`)).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(registrationFor(victim.id)).rejects.toMatchObject({ code: 'unauthenticated' });
    const { token } = await sessions.open(victim.id, clock.date());
    await sessions.signOut(token);
    await expect(registrationFor(token)).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(await db.webauthnChallenge.count({ where: { userId: victim.id } })).toBe(0);
  });

  it("is refused when the session's passkey use is older than PERSON_STEP_UP_MAX_AGE_MS", async () => {
    const user = await users.createUser({ displayName: 'Stale', webauthnUserId: 'handle-stale' });
    const { token } = await sessions.open(user.id, clock.date());
    clock.advance(300_001);
    await expect(registrationFor(token)).rejects.toMatchObject({ code: 'reauthentication_required' });
    expect(await db.webauthnChallenge.count({ where: { userId: user.id } })).toBe(0);
  });
});

describe('sessions', () => {
  it('resolve until expiry, and store only the token hash', async () => {
    const user = await users.createUser({ displayName: 'Sess', webauthnUserId: 'handle-sess' });
    const { token } = await sessions.open(user.id, clock.date());
    // The row is found by the token's hash, and nothing stored equals the token itself.
    const stored = await db.session.findMany({ where: { userId: user.id } });
    expect(stored.map((row) => row.tokenHash)).toEqual([sha256(token)]);
    expect(JSON.stringify(stored, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(token);
    expect((await sessions.resolve(token)).userId).toBe(user.id);
    clock.advance(3_601_000);
    await expect(sessions.resolve(token)).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('end at sign-out, and start when the passkey was used', async () => {
    const user = await users.createUser({ displayName: 'Out', webauthnUserId: 'handle-out' });
    const openedAt = clock.date();
    const { token } = await sessions.open(user.id, openedAt);
    clock.advance(5_000);
    // The session's start is what the gateway reads as "passkey last used".
    expect((await sessions.resolve(token)).createdAt).toEqual(openedAt);
    await sessions.signOut(token);
    await expect(sessions.resolve(token)).rejects.toMatchObject({ code: 'unauthenticated' });
  });
});

describe("a person's own passkeys and sessions", () => {
  const passkeyOf = (userId: string, n: number) =>
    users.addPasskey({
      userId,
      credentialId: `cred-${userId}-${n}`,
      publicKey: new Uint8Array([n]),
      signCount: 0n,
      transports: ['internal'],
      deviceType: 'multiDevice',
      backedUp: true,
    });

  it('lists only the session person’s passkeys and live sessions, marking the current one', async () => {
    const me = await users.createUser({ displayName: 'Me', webauthnUserId: 'handle-me' });
    const other = await users.createUser({ displayName: 'Other', webauthnUserId: 'handle-other' });
    await passkeyOf(me.id, 1);
    await passkeyOf(other.id, 1);
    const laptop = await sessions.open(me.id, clock.date());
    const phone = await sessions.open(me.id, clock.date());
    await sessions.open(other.id, clock.date());
    await sessions.signOut((await sessions.open(me.id, clock.date())).token);

    const seen = await security.overview(phone.token);
    expect(seen.passkeys.map((p) => p.credentialId)).toEqual([`cred-${me.id}-1`]);
    expect(seen.sessions).toHaveLength(2);
    expect(seen.sessions.find((s) => s.id === seen.currentId)?.tokenHash).toBe(sha256(phone.token));

    expect(await security.signOutOthers(phone.token)).toBe(1);
    await expect(sessions.resolve(laptop.token)).rejects.toMatchObject({ code: 'unauthenticated' });
    expect((await sessions.resolve(phone.token)).userId).toBe(me.id);
    await expect(security.overview(`cg_ss_${'B'.repeat(43)}`)).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('removes a passkey with a fresh session only, never the last one, never someone else’s', async () => {
    const me = await users.createUser({ displayName: 'Keys', webauthnUserId: 'handle-keys' });
    const other = await users.createUser({ displayName: 'Theirs', webauthnUserId: 'handle-theirs' });
    const first = await passkeyOf(me.id, 1);
    const second = await passkeyOf(me.id, 2);
    const theirs = await passkeyOf(other.id, 1);
    await passkeyOf(other.id, 2);
    const { token } = await sessions.open(me.id, clock.date());

    await expect(security.removePasskey(token, theirs.id)).rejects.toMatchObject({ code: 'not_found' });
    clock.advance(300_001);
    await expect(security.removePasskey(token, first.id)).rejects.toMatchObject({
      code: 'reauthentication_required',
    });
    const fresh = await sessions.open(me.id, clock.date());
    // Two removals racing: the account keeps one passkey whatever the order.
    const raced = await Promise.allSettled([
      security.removePasskey(fresh.token, first.id),
      security.removePasskey(fresh.token, second.id),
    ]);
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(raced.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'conflict' } });
    expect(await db.passkey.count({ where: { userId: me.id } })).toBe(1);
    expect(await db.passkey.count({ where: { userId: other.id } })).toBe(2);
  });

  it('names the person’s own passkey, trimmed, and never someone else’s', async () => {
    const me = await users.createUser({ displayName: 'Namer', webauthnUserId: 'handle-namer' });
    const other = await users.createUser({ displayName: 'Named', webauthnUserId: 'handle-named' });
    const mine = await passkeyOf(me.id, 1);
    const theirs = await passkeyOf(other.id, 1);
    const { token } = await sessions.open(me.id, clock.date());
    // Naming grants nothing: a session past the step-up window may do it.
    clock.advance(600_000);

    await security.renamePasskey(token, mine.id, '  Work laptop ');
    await expect(security.renamePasskey(token, theirs.id, 'Mine now')).rejects.toMatchObject({ code: 'not_found' });
    expect((await security.overview(token)).passkeys.map((p) => p.name)).toEqual(['Work laptop']);
    expect((await db.passkey.findUniqueOrThrow({ where: { id: theirs.id } })).name).toBeNull();
  });
});

describe('API key last use', () => {
  it('is written at most once a minute', async () => {
    const org = await db.organization.create({ data: { slug: 'touch-org', name: 'Touch' } });
    const app = await db.application.create({
      data: { orgId: org.id, name: 'a', clientId: 'cg_app_touch', callbackUrls: [], integrations: [], scopes: [] },
    });
    const keys = new ApiKeysRepository(db);
    const key = await keys.create({
      orgId: org.id,
      applicationId: app.id,
      secretHash: 'h-touch',
      prefix: 'cg_sk_touch',
    });
    const t0 = new Date('2026-01-01T00:00:00Z');
    await keys.touch(key.id, t0, 60_000);
    await keys.touch(key.id, new Date(t0.getTime() + 30_000), 60_000);
    expect((await db.apiKey.findUniqueOrThrow({ where: { id: key.id } })).lastUsedAt).toEqual(t0);
    const t2 = new Date(t0.getTime() + 61_000);
    await keys.touch(key.id, t2, 60_000);
    expect((await db.apiKey.findUniqueOrThrow({ where: { id: key.id } })).lastUsedAt).toEqual(t2);
  });
});

describe('challenge pruning', () => {
  it('deletes ceremonies that expired over an hour ago, and keeps the rest', async () => {
    const old = await passkeys.startAuthentication();
    clock.advance(2 * 3_600_000);
    const current = await passkeys.startAuthentication();
    await challenges.prune(clock.date());
    expect(await db.webauthnChallenge.count({ where: { ceremonyTokenHash: sha256(old.ceremonyToken) } })).toBe(0);
    expect(await db.webauthnChallenge.count({ where: { ceremonyTokenHash: sha256(current.ceremonyToken) } })).toBe(1);
  });
});
