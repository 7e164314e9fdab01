import { randomBytes } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { assertRecentPasskeyUse, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';

import type { Tx } from '../database/database.module.js';
import { isUniqueViolation } from '../database/prisma-errors.js';
import type { Env } from '../env.js';
import type { WebauthnChallenge } from '../generated/prisma/client.js';
import { newSecret, sha256 } from '../secrets.js';
import { ChallengesRepository, UsersRepository } from './accounts.repository.js';
import { SessionsService } from './sessions.service.js';

const CEREMONY_PREFIX = 'cg_wc_';
const REGISTRATION = 'registration';
const AUTHENTICATION = 'authentication';

export interface CeremonyStart {
  optionsJson: string;
  ceremonyToken: string;
  expiresAt: Date;
}

export interface CeremonyFinish {
  userId: string;
  sessionToken: string;
  sessionExpiresAt: Date;
  newUser: boolean;
}

/**
 * Passkey registration and sign-in (WebAuthn, @simplewebauthn/server). User verification
 * is required in both ceremonies. Each ceremony's challenge is single-use, expires, is
 * bound to its purpose and to the browser that started it (the ceremony token, kept by
 * the gateway in an HttpOnly cookie) and, for registration, to the account being built.
 * The relying party is the gateway's public origin: RP ID = its host name.
 */
@Injectable()
export class PasskeysService {
  private readonly origin: string;
  private readonly rpId: string;

  constructor(
    private readonly users: UsersRepository,
    private readonly challenges: ChallengesRepository,
    private readonly sessions: SessionsService,
    @Inject(SERVICE_ENV) private readonly env: Env,
    private readonly clock: Clock,
  ) {
    const url = new URL(env.GATEWAY_PUBLIC_URL);
    this.origin = url.origin;
    this.rpId = url.hostname;
  }

  /**
   * Starts a registration: a new account, or (sessionToken given: a signed-in browser) one
   * more passkey for that session's account. The account comes from the session identity
   * resolves itself, never from the caller, and the session must be fresh.
   */
  async startRegistration(input: { displayName: string; sessionToken: string }): Promise<CeremonyStart> {
    let user: { id?: string; webauthnUserId: string; displayName: string; newUser: boolean };
    let exclude: { id: string; transports: string[] }[] = [];
    if (input.sessionToken) {
      const session = await this.sessions.resolve(input.sessionToken);
      assertRecentPasskeyUse(session.createdAt, this.env.PERSON_STEP_UP_MAX_AGE_MS, this.clock.now());
      const existing = await this.users.findUser(session.userId);
      if (!existing) throw new AppError('unauthenticated', 'The session has no account');
      user = {
        id: existing.id,
        webauthnUserId: existing.webauthnUserId,
        displayName: existing.displayName,
        newUser: false,
      };
      exclude = (await this.users.listPasskeys(existing.id)).map((p) => ({
        id: p.credentialId,
        transports: p.transports,
      }));
    } else {
      // The WebAuthn user handle is random, not the database id and not personal data.
      user = {
        webauthnUserId: randomBytes(32).toString('base64url'),
        displayName: input.displayName.trim() || 'Context Gateway user',
        newUser: true,
      };
    }
    const options = await generateRegistrationOptions({
      rpName: 'Context Gateway',
      rpID: this.rpId,
      userName: user.displayName,
      userDisplayName: user.displayName,
      userID: Buffer.from(user.webauthnUserId, 'base64url'),
      attestationType: 'none',
      excludeCredentials: exclude,
      // A discoverable credential: sign-in needs no user name.
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      timeout: this.env.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1_000,
    });
    const ceremonyToken = newSecret(CEREMONY_PREFIX);
    const expiresAt = new Date(this.clock.now() + this.env.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1_000);
    await this.challenges.create({
      purpose: REGISTRATION,
      ceremonyTokenHash: sha256(ceremonyToken),
      challenge: options.challenge,
      userId: user.id,
      webauthnUserId: user.webauthnUserId,
      displayName: user.displayName,
      newUser: user.newUser,
      expiresAt,
    });
    return { optionsJson: JSON.stringify(options), ceremonyToken, expiresAt };
  }

  async finishRegistration(input: { ceremonyToken: string; responseJson: string }): Promise<CeremonyFinish> {
    // One instant for the whole ceremony: the challenge's expiry and the session's start.
    const now = this.clock.date();
    const challenge = await this.consume(input.ceremonyToken, REGISTRATION, now);
    const response = parseJson<RegistrationResponseJSON>(input.responseJson);
    let verified;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge.challenge,
        expectedOrigin: this.origin,
        expectedRPID: this.rpId,
        requireUserVerification: true,
      });
    } catch (error) {
      throw new AppError('webauthn_verification_failed', 'The passkey registration did not verify', [], {
        cause: redactedCause(error),
      });
    }
    if (!verified.verified)
      throw new AppError('webauthn_verification_failed', 'The passkey registration did not verify');
    const { credential, credentialDeviceType, credentialBackedUp } = verified.registrationInfo;

    return this.users.transaction(async (tx) => {
      const userId = await this.registeringUser(challenge, tx);
      try {
        await this.users.addPasskey(
          {
            userId,
            credentialId: credential.id,
            publicKey: Uint8Array.from(credential.publicKey),
            signCount: BigInt(credential.counter),
            transports: credential.transports ?? [],
            deviceType: credentialDeviceType,
            backedUp: credentialBackedUp,
          },
          tx,
        );
      } catch (error) {
        if (isUniqueViolation(error)) throw new AppError('conflict', 'This passkey is already registered');
        throw error;
      }
      const session = await this.sessions.open(userId, now, tx);
      return { userId, sessionToken: session.token, sessionExpiresAt: session.expiresAt, newUser: challenge.newUser };
    });
  }

  async startAuthentication(): Promise<CeremonyStart> {
    const options = await generateAuthenticationOptions({
      rpID: this.rpId,
      // Empty: the authenticator offers its discoverable credentials for this RP.
      allowCredentials: [],
      userVerification: 'required',
      timeout: this.env.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1_000,
    });
    const ceremonyToken = newSecret(CEREMONY_PREFIX);
    const expiresAt = new Date(this.clock.now() + this.env.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1_000);
    await this.challenges.create({
      purpose: AUTHENTICATION,
      ceremonyTokenHash: sha256(ceremonyToken),
      challenge: options.challenge,
      expiresAt,
    });
    return { optionsJson: JSON.stringify(options), ceremonyToken, expiresAt };
  }

  async finishAuthentication(input: { ceremonyToken: string; responseJson: string }): Promise<CeremonyFinish> {
    // One instant for the whole ceremony: the challenge's expiry, the counter's use, the session's start.
    const now = this.clock.date();
    const challenge = await this.consume(input.ceremonyToken, AUTHENTICATION, now);
    const response = parseJson<AuthenticationResponseJSON>(input.responseJson);
    const refused = (cause?: unknown) =>
      new AppError(
        'webauthn_verification_failed',
        'The passkey sign-in did not verify',
        [],
        cause === undefined ? {} : { cause: redactedCause(cause) },
      );
    if (typeof response.id !== 'string') throw refused();
    const passkey = await this.users.findPasskey(response.id);
    if (!passkey) throw refused();
    // A discoverable credential names its user; it must be the passkey's owner.
    const handle = response.response?.userHandle;
    if (handle && handle !== passkey.user.webauthnUserId) throw refused();
    let verified;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge.challenge,
        expectedOrigin: this.origin,
        expectedRPID: this.rpId,
        credential: {
          id: passkey.credentialId,
          publicKey: Uint8Array.from(passkey.publicKey),
          counter: Number(passkey.signCount),
          transports: passkey.transports,
        },
        requireUserVerification: true,
      });
    } catch (error) {
      throw refused(error);
    }
    if (!verified.verified) throw refused();
    // The passkey is this person's, but their organization wants them to come through its IdP.
    if (await this.users.ssoRequiredBy(passkey.userId)) {
      throw new AppError('sso_required', 'Your organization requires you to sign in with its single sign-on');
    }
    const next = BigInt(verified.authenticationInfo.newCounter);
    return this.users.transaction(async (tx) => {
      // Compare-and-set: a concurrent sign-in that already moved the counter makes this one fail.
      if (!(await this.users.advanceCounter(passkey.id, passkey.signCount, next, now, tx))) throw refused();
      const session = await this.sessions.open(passkey.userId, now, tx);
      return {
        userId: passkey.userId,
        sessionToken: session.token,
        sessionExpiresAt: session.expiresAt,
        newUser: false,
      };
    });
  }

  /**
   * The account a registration ceremony builds: a new one (created here, in the caller's
   * transaction) or the signed-in user's. startRegistration stores exactly the field each
   * case needs, so a row without it was not written by this service.
   */
  private async registeringUser(challenge: WebauthnChallenge, tx: Tx): Promise<string> {
    if (challenge.newUser) {
      if (challenge.webauthnUserId === null)
        throw new AppError('internal', 'A new-account passkey ceremony has no WebAuthn user handle');
      const user = await this.users.createUser(
        { displayName: challenge.displayName ?? '', webauthnUserId: challenge.webauthnUserId },
        tx,
      );
      return user.id;
    }
    if (challenge.userId === null) throw new AppError('internal', 'An add-a-passkey ceremony names no user');
    return challenge.userId;
  }

  private async consume(ceremonyToken: string, purpose: string, now: Date) {
    const challenge = await this.challenges.consume(sha256(ceremonyToken), purpose, now);
    if (!challenge)
      throw new AppError(
        'webauthn_challenge_invalid',
        'This passkey ceremony is unknown, already used or expired; start again',
      );
    return challenge;
  }
}

/**
 * The library's reason, without the values it quotes (challenges, origins, ids): the
 * reason helps whoever reads the log, a challenge in a log helps nobody but an attacker.
 */
function redactedCause(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return new Error(message.replace(/"[^"]*"/g, '"…"').replace(/[A-Za-z0-9_-]{20,}/g, '…'));
}

function parseJson<T>(text: string): T {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null) return value as T;
  } catch {
    // fall through
  }
  throw new AppError('validation_failed', 'The authenticator response is not a JSON object', [
    { path: 'responseJson', message: 'must be a JSON object' },
  ]);
}
