import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { SESSION_COOKIE } from '../auth/auth.types.js';
import { COOKIES, parseCookies, serializeCookie } from '../auth/cookies.js';

/** Holds the passkey ceremony's token between its two requests: the ceremony is bound to this browser. */
const CEREMONY_COOKIE = COOKIES.ceremony;

export interface CeremonyResult {
  userId: string;
  newUser: boolean;
  /** Set-Cookie values: the session, and the ceremony cookie cleared. */
  cookies: string[];
}

/**
 * The browser side of passkeys and sessions: identity runs the ceremonies and owns the
 * sessions; this keeps their tokens in HttpOnly cookies so no script ever sees them.
 */
/** A person signed in in this browser, and the session token that proves it (never logged). */
export interface SignedInPerson {
  userId: string;
  sessionToken: string;
}

@Injectable()
export class AccountsService {
  constructor(
    private readonly rpcClient: RpcClient,
    private readonly clock: Clock,
  ) {}

  /**
   * A browser with a live session adds a passkey to its own account; identity resolves the
   * session token and checks its freshness. An expired or unknown session is no session:
   * that browser creates a new account, as one without a cookie does.
   */
  async startRegistration(displayName: string, cookieHeader: string | undefined) {
    const session = await this.optionalSession(cookieHeader);
    const started = await this.rpcClient.request(rpc.identity.startPasskeyRegistration, {
      displayName,
      sessionToken: session?.sessionToken ?? '',
    });
    return {
      options: JSON.parse(started.optionsJson) as Record<string, unknown>,
      cookie: this.ceremonyCookie(started.ceremonyToken, started.expiresAt && timestampDate(started.expiresAt)),
    };
  }

  async startAuthentication() {
    const started = await this.rpcClient.request(rpc.identity.startPasskeyAuthentication, {});
    return {
      options: JSON.parse(started.optionsJson) as Record<string, unknown>,
      cookie: this.ceremonyCookie(started.ceremonyToken, started.expiresAt && timestampDate(started.expiresAt)),
    };
  }

  async finish(
    kind: 'registration' | 'authentication',
    cookieHeader: string | undefined,
    response: unknown,
  ): Promise<CeremonyResult> {
    const ceremonyToken = parseCookies(cookieHeader).get(CEREMONY_COOKIE);
    if (!ceremonyToken)
      throw new AppError('webauthn_challenge_invalid', 'No passkey ceremony in progress in this browser; start again');
    const message = { ceremonyToken, responseJson: JSON.stringify(response) };
    const done =
      kind === 'registration'
        ? await this.rpcClient.request(rpc.identity.finishPasskeyRegistration, message, { timeoutMs: 5_000 })
        : await this.rpcClient.request(rpc.identity.finishPasskeyAuthentication, message, { timeoutMs: 5_000 });
    return {
      userId: done.userId,
      newUser: done.newUser,
      cookies: [
        await this.signedIn(done, cookieHeader),
        serializeCookie(CEREMONY_COOKIE, '', { maxAge: 0, sameSite: 'Strict' }),
      ],
    };
  }

  /**
   * A new session for this browser (a passkey ceremony or an SSO sign-in opened it): its
   * cookie. The browser's previous session (if any) ends: one browser, one live session.
   */
  async signedIn(
    done: { sessionToken: string; sessionExpiresAt?: Timestamp | undefined },
    cookieHeader: string | undefined,
  ): Promise<string> {
    const expiresAt = done.sessionExpiresAt ? timestampDate(done.sessionExpiresAt) : this.clock.date();
    const previous = parseCookies(cookieHeader).get(SESSION_COOKIE);
    if (previous) await this.rpcClient.request(rpc.identity.signOut, { sessionToken: previous }).catch(() => undefined);
    return serializeCookie(SESSION_COOKIE, done.sessionToken, {
      maxAge: (expiresAt.getTime() - this.clock.now()) / 1_000,
      sameSite: 'Lax',
    });
  }

  /**
   * The signed-in person of a request that may or may not carry a session (for `auth: 'none'`
   * routes), with the session token that proves them to the services acting for them.
   */
  async optionalPerson(cookieHeader: string | undefined): Promise<SignedInPerson | undefined> {
    const session = await this.optionalSession(cookieHeader);
    return session && { userId: session.userId, sessionToken: session.sessionToken };
  }

  /** The signed-in user and when their passkey was last used, if the browser has a session. */
  async optionalSession(
    cookieHeader: string | undefined,
  ): Promise<(SignedInPerson & { authenticatedAt: Date; displayName: string }) | undefined> {
    const token = parseCookies(cookieHeader).get(SESSION_COOKIE);
    if (!token) return undefined;
    try {
      const session = await this.rpcClient.request(rpc.identity.resolveSession, { sessionToken: token });
      if (!session.user) return undefined;
      return {
        userId: session.user.id,
        displayName: session.user.displayName,
        sessionToken: token,
        authenticatedAt: session.authenticatedAt ? timestampDate(session.authenticatedAt) : new Date(0),
      };
    } catch (error) {
      if (AppError.from(error).code === 'unauthenticated') return undefined;
      throw error;
    }
  }

  async signOut(cookieHeader: string | undefined): Promise<string> {
    const token = parseCookies(cookieHeader).get(SESSION_COOKIE);
    if (token) await this.rpcClient.request(rpc.identity.signOut, { sessionToken: token });
    return serializeCookie(SESSION_COOKIE, '', { maxAge: 0, sameSite: 'Lax' });
  }

  private ceremonyCookie(token: string, expiresAt: Date | undefined): string {
    const maxAge = expiresAt ? (expiresAt.getTime() - this.clock.now()) / 1_000 : 300;
    // Strict: only our own page's fetches carry it (`__Host-` cookies are Path=/).
    return serializeCookie(CEREMONY_COOKIE, token, { maxAge, sameSite: 'Strict' });
  }
}
