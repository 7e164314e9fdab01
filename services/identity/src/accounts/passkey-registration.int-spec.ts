import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Header, RpcClient } from '@context-gateway/messaging';
import { rpc, StartPasskeyRegistrationRequestSchema } from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { headers as natsHeaders } from '@nats-io/transport-node';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { sha256 } from '../secrets.js';
import { UsersRepository } from './accounts.repository.js';
import { SessionsService } from './sessions.service.js';

// identity booted as main.ts boots it, called over NATS as any process on the bus could
// call it: adding a passkey to an existing account takes that account's fresh session,
// checked by identity, and nothing a caller says about who the person is.

let keyDir: string;
let harness: ServiceHarness;
let service: RunningService;
let client: RpcClient;
let victimId: string;
let victimSession: string;

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'identity-passkeys-'));
  harness = await ServiceHarness.start({
    schemaPrefix: 'identity_registration',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  service = await harness.run({
    name: 'identity',
    module: AppModule,
    loadEnv,
    env: { OAUTH_KEYRING_FILE: join(keyDir, 'identity-oauth.key'), PERSON_STEP_UP_MAX_AGE_MS: '60000' },
  });
  client = new RpcClient(harness.nc);
  const victim = await service.app
    .get(UsersRepository, { strict: false })
    .createUser({ displayName: 'Victim', webauthnUserId: 'handle-victim-nats' });
  victimId = victim.id;
  victimSession = (await service.app.get(SessionsService, { strict: false }).open(victim.id, new Date())).token;
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

/** The stored challenge of a started ceremony: whose account it would add a passkey to. */
async function challengeOf(ceremonyToken: string) {
  const { rows } = await harness.db.pool.query<{ user_id: string | null; new_user: boolean }>(
    'SELECT user_id, new_user FROM webauthn_challenges WHERE ceremony_token_hash = $1',
    [sha256(ceremonyToken)],
  );
  return rows[0];
}

const codeOf = (call: Promise<unknown>) =>
  call.then(
    () => 'ok',
    (error: unknown) => (error as { code?: string }).code,
  );

describe('identity.v1.start_passkey_registration over NATS', () => {
  it("adds to the account of the caller's own fresh session", async () => {
    const started = await client.request(rpc.identity.startPasskeyRegistration, { sessionToken: victimSession });
    expect(await challengeOf(started.ceremonyToken)).toEqual({ user_id: victimId, new_user: false });
  });

  it('refuses a token that is no session, or a signed-out one: unauthenticated', async () => {
    const forged = `cg_ss_${'A'.repeat(43)}`;
    expect(await codeOf(client.request(rpc.identity.startPasskeyRegistration, { sessionToken: forged }))).toBe(
      'unauthenticated',
    );
    const sessions = service.app.get(SessionsService, { strict: false });
    const { token } = await sessions.open(victimId, new Date());
    await sessions.signOut(token);
    expect(await codeOf(client.request(rpc.identity.startPasskeyRegistration, { sessionToken: token }))).toBe(
      'unauthenticated',
    );
  });

  it('refuses a session whose passkey use is older than PERSON_STEP_UP_MAX_AGE_MS: reauthentication_required', async () => {
    const { token } = await service.app
      .get(SessionsService, { strict: false })
      .open(victimId, new Date(Date.now() - 61_000));
    expect(await codeOf(client.request(rpc.identity.startPasskeyRegistration, { sessionToken: token }))).toBe(
      'reauthentication_required',
    );
  });

  it("ignores a bare user id (the old field 2): the ceremony creates a new account, never the victim's", async () => {
    // The request as an older caller (or an attacker) would encode it: display name + user_id.
    const legacy = new Uint8Array([
      ...toBinary(
        StartPasskeyRegistrationRequestSchema,
        create(StartPasskeyRegistrationRequestSchema, { displayName: 'M' }),
      ),
      0x12,
      victimId.length,
      ...new TextEncoder().encode(victimId),
    ]);
    const h = natsHeaders();
    h.set(Header.deadline, String(Date.now() + 5_000));
    const reply = await harness.nc.request(rpc.identity.startPasskeyRegistration.subject, legacy, {
      timeout: 5_000,
      headers: h,
    });
    const started = fromBinary(rpc.identity.startPasskeyRegistration.response, reply.data);
    expect(await challengeOf(started.ceremonyToken)).toEqual({ user_id: null, new_user: true });
  });
});
