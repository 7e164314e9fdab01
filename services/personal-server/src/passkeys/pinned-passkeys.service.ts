import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import {
  approvalChallenge,
  type ApprovalStatement,
  grantChallenge,
  type GrantStatement,
  passkeyChallenge,
} from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { type PasskeyProof, rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import { type AuthenticationResponseJSON, verifyAuthenticationResponse } from '@simplewebauthn/server';
import type { PoolClient } from 'pg';
import type { Logger } from 'pino';

import { ConnectionsService } from '../connections/connections.service.js';
import { DirectoryService } from '../directory/directory.service.js';
import type { Env } from '../env.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { passkeySealMatches, sealPasskey } from './passkey-seal.js';
import { PinnedPasskeysRepository, type ServerPins } from './pinned-passkeys.repository.js';

/** The longest a signed statement may stay usable: a connect session and the source's login. */
const MAX_PROOF_LIFETIME_MS = 24 * 60 * 60_000;

/** The grant's terms as the person signs them (the nonce and expiry come with the proof). */
export type GrantTerms = Omit<GrantStatement, 'nonce' | 'notAfter'>;

/** The held MCP call's terms as the person signs them (the nonce and expiry come with the proof). */
export type ApprovalTerms = Omit<ApprovalStatement, 'nonce' | 'notAfter'>;

/** A passkey as identity holds it: its id and COSE public key. */
interface HeldPasskey {
  credentialId: string;
  publicKey: Uint8Array;
}

function refused(message: string): AppError {
  return new AppError('passkey_signature_invalid', message);
}

/**
 * The passkeys a person's Personal Server trusts, and the signatures it honours. No grant is
 * registered without the person's passkey assertion over that grant's terms
 * (libs/crypto passkey-statement.ts), verified here against passkeys this server pinned:
 * - at the person's first consent, once that consent's signature verifies against one of
 *   the passkeys identity holds for them, it pins every one of those: trust on first use.
 *   The server's own key, created then, records that outside the database: a server whose
 *   "pinned" flag was reset in SQL is refused, not pinned again;
 * - after that, a passkey is pinned only with an assertion by a pinned one over the new
 *   passkey's id and key (`pin`), so neither identity nor any caller on the bus can add one;
 * - each pin is sealed under the server's key (KEK-wrapped, outside Postgres), so a passkey
 *   written in SQL signs nothing; identity can take trust away (a passkey it no longer
 *   holds signs nothing here), never add it;
 * - each signature's nonce is spent once (`spend`).
 */
@Injectable()
export class PinnedPasskeysService {
  readonly #origin: string;
  readonly #rpId: string;

  constructor(
    private readonly repository: PinnedPasskeysRepository,
    private readonly directory: DirectoryService,
    private readonly connections: ConnectionsService,
    private readonly keys: RecordKeys,
    private readonly rpc: RpcClient,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Pick<Env, 'GATEWAY_PUBLIC_URL'>,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    const url = new URL(env.GATEWAY_PUBLIC_URL);
    this.#origin = url.origin;
    this.#rpId = url.hostname;
  }

  /**
   * A consent's signature over these terms, verified; nothing is spent (the grant's
   * registration checks it again, then spends the nonce). The person's first consent
   * provisions their server and pins their passkeys. Returns the signer's credential id.
   */
  async checkConsent(terms: GrantTerms, proof: PasskeyProof | undefined): Promise<string> {
    const { nonce, notAfter } = this.terms(proof);
    return this.verify(terms.userId, proof, grantChallenge({ ...terms, nonce, notAfter }));
  }

  /**
   * A person's approval of one held MCP call (gateway mode), verified against a passkey this
   * server pinned — never trust on first use: someone holding only the person's session could
   * add a passkey at identity, but not pin it here. Nothing is spent: the gateway decides its
   * request once. Returns the signer's credential id.
   */
  async checkApproval(terms: ApprovalTerms, proof: PasskeyProof | undefined): Promise<string> {
    const { nonce, notAfter } = this.terms(proof);
    return this.verify(terms.userId, proof, approvalChallenge({ ...terms, nonce, notAfter }), { firstUse: false });
  }

  /**
   * In the caller's transaction: the signature's nonce goes to `subject`, once. `same` when
   * it already went to that very subject (a retried call: the caller checks it is the same).
   */
  async spend(
    tx: PoolClient,
    userId: string,
    proof: PasskeyProof | undefined,
    subject: string,
  ): Promise<'spent' | 'same'> {
    const spent = await this.repository.spend(tx, this.terms(proof).nonce, userId, subject);
    if (spent === 'other') throw refused('This signature was already used');
    return spent;
  }

  /**
   * Pins a passkey the person added, endorsed by a pinned one. `pinned: false` when nothing is
   * pinned for the person yet: their first consent will pin it with the others.
   */
  async pin(userId: string, credentialId: string, endorsement: PasskeyProof | undefined): Promise<boolean> {
    const server = await this.repository.server(this.repository.pool, userId);
    if (!server?.pinnedAt) return false;
    const { nonce, notAfter } = this.terms(endorsement);
    // The key comes from identity, never from the caller; the endorsement covers exactly it.
    const added = (await this.identityPasskeys(userId)).find((p) => p.credentialId === credentialId);
    if (!added) throw new AppError('not_found', 'The person has no such passkey');
    const signer = await this.verify(
      userId,
      endorsement,
      passkeyChallenge({ userId, credentialId, publicKey: added.publicKey, nonce, notAfter }),
    );
    if (signer === credentialId) throw refused('A passkey cannot endorse itself');
    await this.connections.transaction(async (tx) => {
      const locked = await this.lockedServer(tx, userId);
      await this.spend(tx, userId, endorsement, `passkey:${credentialId}`);
      const key = await this.keys.openServerKey({ personalServerId: locked.personalServerId, userId });
      const pin = { userId, credentialId, publicKey: Buffer.from(added.publicKey) };
      await this.repository.insert(tx, { ...pin, seal: sealPasskey(key, pin) });
    });
    this.logger.info({ userId, signer }, 'passkey pinned, endorsed by a pinned one');
    return true;
  }

  /**
   * The person removed the passkey: it signs nothing more here. Never the last pinned one
   * (`conflict`): a caller on the bus could otherwise leave the person unable to sign.
   */
  async unpin(userId: string, credentialId: string): Promise<boolean> {
    const outcome = await this.connections.transaction(async (tx) => {
      if (!(await this.repository.server(tx, userId, true))) return 'missing' as const;
      return this.repository.remove(tx, userId, credentialId);
    });
    if (outcome === 'last')
      throw new AppError('conflict', 'The only passkey this Personal Server trusts is not removed from it');
    return outcome === 'removed';
  }

  async list(userId: string): Promise<{ credentialIds: string[]; pinned: boolean }> {
    const server = await this.repository.server(this.repository.pool, userId);
    return { credentialIds: await this.repository.list(userId), pinned: Boolean(server?.pinnedAt) };
  }

  /**
   * The assertion verified for `challenge`, by a passkey the person's server trusts and
   * identity still holds; the signer's credential id. The first consent pins (see above);
   * with `firstUse: false` a person with nothing pinned is refused instead.
   */
  private async verify(
    userId: string,
    proof: PasskeyProof | undefined,
    challenge: string,
    { firstUse }: { firstUse: boolean } = { firstUse: true },
  ): Promise<string> {
    const { notAfter } = this.terms(proof);
    const now = this.clock.now();
    if (notAfter.getTime() <= now) throw refused('The signature has expired');
    if (notAfter.getTime() > now + MAX_PROOF_LIFETIME_MS) throw refused('The signature is valid for too long');
    const response = parseAssertion(proof?.assertionJson ?? '');
    const held = await this.identityPasskeys(userId);
    const signer = held.find((p) => p.credentialId === response.id);
    if (!signer) throw refused('Not signed by a passkey of this person');
    const server = await this.repository.server(this.repository.pool, userId);
    if (!server?.pinnedAt) {
      if (!firstUse) throw refused('No passkey of this person is trusted here yet: their first consent pins them');
      // The first consent: its signature must verify before anything is pinned.
      await this.assertion(response, challenge, signer.publicKey);
      await this.pinFirst(userId, held);
      return signer.credentialId;
    }
    const pin = await this.repository.find(this.repository.pool, userId, response.id);
    if (!pin) throw refused('Not signed by a passkey this Personal Server trusts');
    const key = await this.keys.openServerKey({ personalServerId: server.personalServerId, userId });
    if (!passkeySealMatches(key, pin)) {
      this.logger.warn({ userId }, 'refused a pinned passkey whose seal does not match its row');
      throw refused('Not signed by a passkey this Personal Server trusts');
    }
    await this.assertion(response, challenge, pin.publicKey);
    return pin.credentialId;
  }

  /** Trust on first use: provisions the server, makes its key, pins every passkey identity holds. */
  private async pinFirst(userId: string, held: HeldPasskey[]): Promise<void> {
    await this.directory.provision(userId);
    const pinned = await this.connections.transaction(async (tx) => {
      const locked = await this.lockedServer(tx, userId);
      if (locked.pinnedAt) return 0; // another call pinned them first
      if (await this.keys.hasServerKey(userId)) {
        // Pinned once (the key exists), yet the row says not: reset in the database, not by us.
        this.logger.error({ userId }, "refused to pin again: the server's key exists but its row says unpinned");
        throw refused('This Personal Server’s trusted passkeys were reset outside it');
      }
      const owner = { personalServerId: locked.personalServerId, userId };
      await this.keys.createServerKey(owner);
      try {
        const key = await this.keys.openServerKey(owner);
        for (const p of held) {
          const pin = { userId, credentialId: p.credentialId, publicKey: Buffer.from(p.publicKey) };
          await this.repository.insert(tx, { ...pin, seal: sealPasskey(key, pin) });
        }
        await this.repository.markPinned(tx, locked.personalServerId);
      } catch (error) {
        await this.keys.destroyServerKey(owner).catch(() => undefined);
        throw error;
      }
      return held.length;
    });
    if (pinned > 0) this.logger.info({ userId, pinned }, "pinned the person's passkeys (first consent)");
  }

  private async identityPasskeys(userId: string): Promise<HeldPasskey[]> {
    return (await this.rpc.request(rpc.identity.listUserPasskeys, { userId })).passkeys;
  }

  private async lockedServer(tx: PoolClient, userId: string): Promise<ServerPins> {
    const locked = await this.repository.server(tx, userId, true);
    // Provisioned before this is called; servers are never deleted while their person exists.
    if (!locked) throw new AppError('internal', 'The Personal Server vanished while pinning passkeys');
    return locked;
  }

  private terms(proof: PasskeyProof | undefined): { nonce: string; notAfter: Date } {
    // The contracts' validation requires both; proto3 cannot mark them required.
    if (!proof?.notAfter || !proof.nonce) throw refused('A passkey signature is required');
    return { nonce: proof.nonce, notAfter: timestampDate(proof.notAfter) };
  }

  private async assertion(response: AuthenticationResponseJSON, challenge: string, publicKey: Uint8Array) {
    let verified;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#origin,
        expectedRPID: this.#rpId,
        // Replay is stopped by the nonce, spent once; the counter is identity's business.
        credential: { id: response.id, publicKey: Uint8Array.from(publicKey), counter: 0 },
        requireUserVerification: true,
      });
    } catch {
      throw refused('The passkey signature does not verify for these terms');
    }
    if (!verified.verified) throw refused('The passkey signature does not verify for these terms');
  }
}

function parseAssertion(json: string): AuthenticationResponseJSON {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw refused('The passkey signature is not JSON');
  }
  const v = value as Partial<AuthenticationResponseJSON> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.id !== 'string' ||
    v.type !== 'public-key' ||
    typeof v.response !== 'object' ||
    typeof v.response.clientDataJSON !== 'string'
  )
    throw refused('The passkey signature is not an assertion');
  // Made in a frame of another site (clickjacking): refused, whatever it signed.
  let clientData: { crossOrigin?: unknown };
  try {
    clientData = JSON.parse(Buffer.from(v.response.clientDataJSON, 'base64url').toString('utf8')) as {
      crossOrigin?: unknown;
    };
  } catch {
    throw refused('The passkey signature is not an assertion');
  }
  if (clientData.crossOrigin === true) throw refused('The passkey signed inside another site’s frame');
  return v as AuthenticationResponseJSON;
}
