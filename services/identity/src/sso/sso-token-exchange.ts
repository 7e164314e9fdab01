import { createHash } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';
import { createRemoteJWKSet, errors as joseErrors, type JWTPayload, jwtVerify } from 'jose';

import { UsersRepository } from '../accounts/accounts.repository.js';
import { SsoConfigsRepository } from './sso.repository.js';
import { SsoConfigService } from './sso-config.service.js';
import { isMember } from './sso-membership.js';
import { SsoPeople } from './sso-people.js';

/** How long fetching the IdP's JWKS may take. */
const JWKS_TIMEOUT_MS = 10_000;
/** A JWKS is re-read at most this often when an unknown `kid` shows up (rotation). */
const JWKS_COOLDOWN_MS = 30_000;
/** And at least this often, so a key the IdP withdrew stops verifying. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** An ID token older than this is not exchanged, whatever its `exp` says. */
const MAX_ID_TOKEN_AGE_SECONDS = 60 * 60;
/** Clock skew allowed between the IdP and us. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** `typ` values of JWTs that are not ID tokens (RFC 9068 access tokens, logout tokens): never exchanged. */
const NOT_ID_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt', 'logout+jwt', 'application/logout+jwt']);

/** An ID token that verified, not yet used: the caller makes it single-use, then provisions. */
export interface VerifiedIdToken {
  /** Stable for this one token however its signature is encoded: the key of its single use. */
  replayKey: string;
  /** Its `exp`: how long the single-use record must be kept. */
  expiresAt: Date;
  /** The gateway user it names (provisioned as a member on first sight). */
  person(): Promise<string>;
}

/**
 * RFC 8693 token exchange, the SSO side: an application of the organization presents an ID
 * token the organization's own IdP issued to it (its client id there is set by an admin),
 * and the person it names is the person the gateway token will act for. Checked: the
 * signature against the IdP's JWKS (discovered from the configured issuer), `iss`, `aud`
 * (and `azp`) naming the application's IdP client, `exp`, `iat` within the last hour, and
 * membership by the organization's rules, as at a browser sign-in. The claims must be in
 * the ID token itself: with no access token there is no UserInfo call.
 */
@Injectable()
export class SsoTokenExchange {
  readonly #jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  constructor(
    private readonly configs: SsoConfigsRepository,
    private readonly config: SsoConfigService,
    private readonly people: SsoPeople,
    private readonly users: UsersRepository,
    private readonly clock: Clock,
  ) {}

  async verify(input: { orgId: string; idpClientId: string; idToken: string }): Promise<VerifiedIdToken> {
    const row = await this.configs.find(input.orgId);
    if (!row) throw new AppError('sso_not_configured', 'The organization signs in with no identity provider');
    // The gateway's own client at the IdP signs people in to the gateway: its ID tokens are
    // never an application's to exchange, whatever an admin typed as the application's client.
    if (input.idpClientId === row.clientId) throw refused("it was issued to the gateway's own client at the IdP");
    const metadata = (await this.config.client(row)).serverMetadata();
    const claims = await this.#verified(input.idToken, {
      issuer: metadata.issuer,
      jwksUri: metadata.jwks_uri ?? '',
      audience: input.idpClientId,
      algorithms: (metadata.id_token_signing_alg_values_supported ?? ['RS256']).filter((alg) => alg !== 'none'),
    });
    const subject = claims.sub;
    if (!subject) throw refused('it names no subject');
    if (!isMember(claims, row)) {
      throw new AppError(
        'sso_membership_refused',
        "The identity provider's account is not a member of this organization",
      );
    }
    return {
      // The signed part (header.payload), not the whole text: a JWS signature can be written
      // in more than one way that verifies (unused base64url bits; ECDSA's s and n - s), and
      // each would otherwise count as another token.
      replayKey: createHash('sha256')
        .update(input.idToken.slice(0, input.idToken.lastIndexOf('.')))
        .digest('base64url'),
      expiresAt: new Date((claims.exp ?? 0) * 1_000),
      person: () =>
        this.users.transaction(
          async (tx) => (await this.people.provision(row, { ...claims, sub: subject }, this.clock.date(), tx)).userId,
        ),
    };
  }

  async #verified(
    idToken: string,
    expected: { issuer: string; jwksUri: string; audience: string; algorithms: string[] },
  ): Promise<JWTPayload> {
    try {
      const { payload, protectedHeader } = await jwtVerify(idToken, this.#keys(expected.jwksUri), {
        issuer: expected.issuer,
        audience: expected.audience,
        algorithms: expected.algorithms,
        requiredClaims: ['sub', 'iat', 'exp'],
        maxTokenAge: MAX_ID_TOKEN_AGE_SECONDS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: this.clock.date(),
      });
      if (protectedHeader.typ && NOT_ID_TOKEN_TYPES.has(protectedHeader.typ.toLowerCase())) {
        throw refused(`a ${protectedHeader.typ} token is not an ID token`);
      }
      // OIDC Core 3.1.3.7: with several audiences, the authorized party must be the client.
      const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      if (payload['azp'] !== undefined ? payload['azp'] !== expected.audience : audiences.length > 1) {
        throw refused('it was issued to another client (azp)');
      }
      return payload;
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw refused(reason(error));
    }
  }

  #keys(jwksUri: string) {
    let keys = this.#jwks.get(jwksUri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(jwksUri), {
        timeoutDuration: JWKS_TIMEOUT_MS,
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_MAX_AGE_MS,
      });
      this.#jwks.set(jwksUri, keys);
    }
    return keys;
  }
}

function refused(why: string): AppError {
  return new AppError('sso_response_invalid', `The ID token was refused: ${why}`);
}

/** jose's verdict as a fixed phrase: never the token's own content. */
function reason(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) {
    return error.claim === 'iat' ? 'it was issued over an hour ago' : 'it has expired';
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `its "${error.claim}" claim is not as expected`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the identity provider signed it';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'its algorithm is not one the identity provider uses';
  if (error instanceof joseErrors.JWKSTimeout) return "the identity provider's keys could not be fetched in time";
  if (error instanceof joseErrors.JOSEError) return `it is not a valid signed JWT (${error.code})`;
  return 'it could not be checked';
}
