import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import * as client from 'openid-client';

import { UsersRepository } from '../accounts/accounts.repository.js';
import { SessionsService } from '../accounts/sessions.service.js';
import type { Env } from '../env.js';
import { newSecret, sha256 } from '../secrets.js';
import { type SsoConfigRow, SsoLoginsRepository } from './sso.repository.js';
import { SsoConfigService } from './sso-config.service.js';
import { describe } from './sso-issuers.js';
import { isMember } from './sso-membership.js';
import { SsoPeople } from './sso-people.js';

const BROWSER_TOKEN_PREFIX = 'cg_sso_';
/** How long a person has at their IdP before the sign-in must start again. */
const LOGIN_TTL_MS = 10 * 60_000;
/** Starting needs no account: old rows are deleted as starts come in, at most this often, so the table stays about an hour deep. */
const PRUNE_EVERY_MS = 10 * 60_000;

export interface SsoSignInResult {
  userId: string;
  orgId: string;
  newUser: boolean;
  sessionToken: string;
  sessionExpiresAt: Date;
  returnTo: string;
}

/**
 * Signing a person in through their organization's IdP (openid-client as the relying
 * party): code + PKCE S256, a nonce in the ID token, a single-use state bound to the
 * browser, the issuer checked in discovery, in the response's `iss` (RFC 9207) and in the
 * ID token. A person the IdP vouches for, whose email or claims make them a member, is
 * provisioned on first sign-in and gets a gateway session like a passkey sign-in's.
 */
@Injectable()
export class SsoSignInService {
  readonly #redirectUri: string;
  #prunedAt = 0;

  constructor(
    private readonly configs: SsoConfigService,
    private readonly logins: SsoLoginsRepository,
    private readonly people: SsoPeople,
    private readonly users: UsersRepository,
    private readonly sessions: SessionsService,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Env,
  ) {
    // The gateway serves the callback (its session cookie is set there): the one redirect URI to register at the IdP.
    this.#redirectUri = `${env.GATEWAY_PUBLIC_URL.replace(/\/+$/, '')}/v1/auth/sso/callback`;
  }

  async start(input: { organization: string; returnTo: string }) {
    const { row, email } = await this.configs.lookup(input.organization);
    const config = await this.configs.client(row);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const browserToken = newSecret(BROWSER_TOKEN_PREFIX);
    const expiresAt = new Date(this.clock.now() + LOGIN_TTL_MS);
    if (this.clock.now() - this.#prunedAt > PRUNE_EVERY_MS) {
      this.#prunedAt = this.clock.now();
      await this.logins.prune(this.clock.date());
    }
    await this.logins.create({
      stateHash: sha256(state),
      browserTokenHash: sha256(browserToken),
      orgId: row.orgId,
      codeVerifier,
      nonce,
      returnTo: input.returnTo,
      expiresAt,
    });
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.#redirectUri,
      response_type: 'code',
      scope: 'openid email profile',
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      ...(email ? { login_hint: email } : {}),
    });
    return { authorizationUrl: url.href, browserToken, expiresAt };
  }

  async finish(input: { browserToken: string; callbackQuery: string }): Promise<SsoSignInResult> {
    const now = this.clock.date();
    const query = new URLSearchParams(input.callbackQuery.replace(/^\?/, ''));
    const state = query.get('state');
    const login = state ? await this.logins.consume(sha256(state), sha256(input.browserToken), now) : undefined;
    if (!login) {
      throw new AppError(
        'sso_state_invalid',
        'This sign-in is unknown, already used, expired or was started in another browser',
      );
    }
    const row = await this.configs.get(login.orgId).catch(() => {
      throw new AppError('sso_not_configured', 'The organization no longer signs in with SSO');
    });
    const claims = await this.#verifiedClaims(row, query, login);
    if (!isMember(claims, row)) {
      throw new AppError(
        'sso_membership_refused',
        'Your identity provider account is not a member of this organization',
      );
    }
    return this.#provision(row, claims, now, login.returnTo);
  }

  async #verifiedClaims(row: SsoConfigRow, query: URLSearchParams, login: { codeVerifier: string; nonce: string }) {
    const config = await this.configs.client(row);
    const callback = new URL(this.#redirectUri);
    callback.search = query.toString();
    try {
      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: query.get('state') ?? '',
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (!claims) throw new Error('no ID token');
      // A conforming IdP may keep email and profile claims out of the ID token when it also
      // issues an access token (OIDC Core 5.4): then they come from its UserInfo endpoint,
      // which must name the same subject (openid-client checks). The ID token's own claims win.
      if (claims['email'] === undefined && config.serverMetadata().userinfo_endpoint) {
        const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
        return { ...info, ...claims } as client.IDToken;
      }
      return claims;
    } catch (error) {
      throw new AppError('sso_response_invalid', `The identity provider's answer was refused: ${describe(error)}`);
    }
  }

  async #provision(row: SsoConfigRow, claims: client.IDToken, now: Date, returnTo: string): Promise<SsoSignInResult> {
    return this.users.transaction(async (tx) => {
      const { userId, newUser } = await this.people.provision(row, claims, now, tx);
      const session = await this.sessions.open(userId, now, tx, 'sso');
      return {
        userId,
        orgId: row.orgId,
        newUser,
        sessionToken: session.token,
        sessionExpiresAt: session.expiresAt,
        returnTo,
      };
    });
  }
}
