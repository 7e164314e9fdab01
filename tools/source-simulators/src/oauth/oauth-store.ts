import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { type Clock, systemClock } from '@context-gateway/clock';

import type { Counters } from '../counters.js';
import { BASE62 } from '../prng.js';

/** An OAuth client registered with a simulated source (the broker, a test, the demo). */
export interface OAuthClient {
  clientId: string;
  clientSecret: string;
  /** Compared byte for byte with the redirect_uri of each request: no prefix or pattern match. */
  redirectUris: string[];
  name: string;
}

/** An authorization request between GET /authorize and the consent decision. */
export interface PendingAuthorization {
  id: string;
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state: string | undefined;
  codeChallenge: string;
  /** Set once the person has signed in; consent is refused before that. */
  accountId: number | undefined;
  expiresAt: number;
}

interface AuthorizationCode {
  clientId: string;
  redirectUri: string;
  accountId: number;
  scopes: string[];
  codeChallenge: string;
  expiresAt: number;
  used: boolean;
  /** The token family issued from this code, revoked if the code is replayed (RFC 6749 §4.1.2). */
  familyId: string | undefined;
}

/** Every token descended from one authorization code: revoked together on replay or reuse. */
interface TokenFamily {
  id: string;
  clientId: string;
  accountId: number;
  scopes: string[];
  revoked: boolean;
  accessTokens: Set<string>;
  refreshTokens: Set<string>;
}

interface AccessTokenRecord {
  familyId: string;
  expiresAt: number;
}

interface RefreshTokenRecord {
  familyId: string;
  /** 0 = never expires. */
  expiresAt: number;
  /** Already exchanged for a newer one: presenting it again is reuse. */
  rotated: boolean;
}

export interface TokenSettings {
  accessTokenTtlSeconds: number;
  /** 0 = refresh tokens never expire (Spotify). */
  refreshTokenTtlSeconds: number;
  codeTtlSeconds: number;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  refreshTokenExpiresIn: number;
  scopes: string[];
}

/** Why a grant failed; each provider maps these to its own error body. */
export type GrantFailureReason =
  | 'code_unknown'
  | 'code_expired'
  | 'code_replayed'
  | 'client_mismatch'
  | 'redirect_uri_mismatch'
  | 'pkce_missing'
  | 'pkce_mismatch'
  | 'refresh_unknown'
  | 'refresh_expired'
  | 'refresh_reused'
  | 'refresh_revoked';

export type GrantResult = { ok: true; tokens: IssuedTokens } | { ok: false; reason: GrantFailureReason };

export type TokenCheck =
  | { status: 'ok'; accountId: number; clientId: string; scopes: string[] }
  | { status: 'missing' | 'invalid' | 'expired' };

export interface TokenFormat {
  accessToken(): string;
  refreshToken(): string;
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Random [A-Za-z0-9] string (GitHub-style token bodies). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length)) {
      // Rejection sampling keeps the alphabet uniform (248 = 4 * 62).
      if (b < 248 && out.length < length) out += BASE62[b % 62];
    }
  }
  return out;
}

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * The authorization server's state, shared by all three providers: clients, pending
 * requests, single-use codes, and token families with rotation and reuse detection.
 * Everything is in memory; a simulator restart forgets it (like a wiped test source).
 */
export class OAuthStore {
  readonly clients = new Map<string, OAuthClient>();
  private readonly pending = new Map<string, PendingAuthorization>();
  private readonly codes = new Map<string, AuthorizationCode>();
  private readonly families = new Map<string, TokenFamily>();
  private readonly accessTokens = new Map<string, AccessTokenRecord>();
  private readonly refreshTokens = new Map<string, RefreshTokenRecord>();
  private readonly sessions = new Map<string, number>();
  /** Personal API keys (sources that authenticate with a pasted key instead of OAuth). */
  private readonly apiKeys = new Map<string, { accountId: number; scopes: string[] }>();

  constructor(
    readonly settings: TokenSettings,
    private readonly format: TokenFormat,
    private readonly counters: Counters,
    private readonly clock: Clock = systemClock,
  ) {}

  registerClient(client: OAuthClient): OAuthClient {
    this.clients.set(client.clientId, client);
    return client;
  }

  /** Client authentication at the token/revocation endpoints; undefined when it fails. */
  authenticateClient(clientId: string | undefined, clientSecret: string | undefined): OAuthClient | undefined {
    if (!clientId || clientSecret === undefined) return undefined;
    const client = this.clients.get(clientId);
    if (!client || !sameSecret(client.clientSecret, clientSecret)) return undefined;
    return client;
  }

  // ---- personal API keys ----

  addApiKey(key: string, accountId: number, scopes: string[]): void {
    this.apiKeys.set(key, { accountId, scopes });
  }

  revokeApiKey(key: string): boolean {
    return this.apiKeys.delete(key);
  }

  // ---- browser sessions (the source's own login cookie) ----

  createSession(accountId: number): string {
    const id = randomToken();
    this.sessions.set(id, accountId);
    return id;
  }

  sessionAccount(sessionId: string | undefined): number | undefined {
    return sessionId ? this.sessions.get(sessionId) : undefined;
  }

  // ---- authorization requests and codes ----

  startAuthorization(input: Omit<PendingAuthorization, 'id' | 'expiresAt' | 'accountId'>): PendingAuthorization {
    const pending: PendingAuthorization = {
      ...input,
      id: randomToken(16),
      accountId: undefined,
      // The person has 10 minutes to sign in and decide.
      expiresAt: this.clock.now() + 10 * 60_000,
    };
    this.pending.set(pending.id, pending);
    return pending;
  }

  pendingAuthorization(id: string | undefined): PendingAuthorization | undefined {
    if (!id) return undefined;
    const pending = this.pending.get(id);
    if (pending && pending.expiresAt < this.clock.now()) {
      this.pending.delete(id);
      return undefined;
    }
    return pending;
  }

  /** Ends a pending request (consent given or denied): the same request cannot be decided twice. */
  finishAuthorization(id: string): void {
    this.pending.delete(id);
  }

  issueCode(pending: PendingAuthorization, accountId: number): string {
    const code = randomToken(20);
    this.codes.set(code, {
      clientId: pending.clientId,
      redirectUri: pending.redirectUri,
      accountId,
      scopes: pending.scopes,
      codeChallenge: pending.codeChallenge,
      expiresAt: this.clock.now() + this.settings.codeTtlSeconds * 1000,
      used: false,
      familyId: undefined,
    });
    this.counters.codesIssued++;
    return code;
  }

  exchangeCode(
    client: OAuthClient,
    code: string | undefined,
    redirectUri: string | undefined,
    verifier: string | undefined,
  ): GrantResult {
    const record = code ? this.codes.get(code) : undefined;
    if (!record) return { ok: false, reason: 'code_unknown' };
    if (record.used) {
      // Replay: whoever holds the code now may be an attacker; revoke what it produced.
      if (record.familyId) this.revokeFamily(record.familyId);
      return { ok: false, reason: 'code_replayed' };
    }
    if (record.clientId !== client.clientId) return { ok: false, reason: 'client_mismatch' };
    // A code is burnt by any attempt from its own client, successful or not.
    record.used = true;
    if (record.expiresAt < this.clock.now()) return { ok: false, reason: 'code_expired' };
    if (redirectUri !== record.redirectUri) return { ok: false, reason: 'redirect_uri_mismatch' };
    if (!verifier) return { ok: false, reason: 'pkce_missing' };
    if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier) || s256(verifier) !== record.codeChallenge) {
      return { ok: false, reason: 'pkce_mismatch' };
    }
    const family: TokenFamily = {
      id: randomToken(12),
      clientId: client.clientId,
      accountId: record.accountId,
      scopes: record.scopes,
      revoked: false,
      accessTokens: new Set(),
      refreshTokens: new Set(),
    };
    this.families.set(family.id, family);
    record.familyId = family.id;
    this.counters.tokensIssued++;
    return { ok: true, tokens: this.mint(family) };
  }

  refresh(client: OAuthClient, refreshToken: string | undefined): GrantResult {
    const record = refreshToken ? this.refreshTokens.get(refreshToken) : undefined;
    if (!record) return { ok: false, reason: 'refresh_unknown' };
    const family = this.families.get(record.familyId);
    if (!family || family.clientId !== client.clientId) return { ok: false, reason: 'refresh_unknown' };
    if (family.revoked) return { ok: false, reason: 'refresh_revoked' };
    if (record.rotated) {
      // Reuse of a rotated refresh token: one of the two holders is not legitimate.
      this.revokeFamily(family.id);
      return { ok: false, reason: 'refresh_reused' };
    }
    if (record.expiresAt !== 0 && record.expiresAt < this.clock.now()) return { ok: false, reason: 'refresh_expired' };
    record.rotated = true;
    this.counters.tokensRefreshed++;
    return { ok: true, tokens: this.mint(family) };
  }

  private mint(family: TokenFamily): IssuedTokens {
    const { accessTokenTtlSeconds, refreshTokenTtlSeconds } = this.settings;
    const accessToken = this.format.accessToken();
    const refreshToken = this.format.refreshToken();
    const now = this.clock.now();
    this.accessTokens.set(accessToken, { familyId: family.id, expiresAt: now + accessTokenTtlSeconds * 1000 });
    this.refreshTokens.set(refreshToken, {
      familyId: family.id,
      expiresAt: refreshTokenTtlSeconds > 0 ? now + refreshTokenTtlSeconds * 1000 : 0,
      rotated: false,
    });
    family.accessTokens.add(accessToken);
    family.refreshTokens.add(refreshToken);
    return {
      accessToken,
      refreshToken,
      expiresIn: accessTokenTtlSeconds,
      refreshTokenExpiresIn: refreshTokenTtlSeconds,
      scopes: family.scopes,
    };
  }

  // ---- using and revoking tokens ----

  checkAccessToken(token: string | undefined): TokenCheck {
    if (!token) return { status: 'missing' };
    const record = this.accessTokens.get(token);
    if (!record) {
      const key = this.apiKeys.get(token);
      return key
        ? { status: 'ok', accountId: key.accountId, clientId: 'api-key', scopes: key.scopes }
        : { status: 'invalid' };
    }
    const family = this.families.get(record.familyId);
    if (!family || family.revoked) return { status: 'invalid' };
    if (record.expiresAt <= this.clock.now()) return { status: 'expired' };
    return { status: 'ok', accountId: family.accountId, clientId: family.clientId, scopes: family.scopes };
  }

  /** Who an access token belongs to, even once expired (GitHub's grant deletion accepts those). */
  tokenOwner(token: string): { accountId: number; clientId: string } | undefined {
    const record = this.accessTokens.get(token);
    const family = record ? this.families.get(record.familyId) : undefined;
    if (!family || family.revoked) return undefined;
    return { accountId: family.accountId, clientId: family.clientId };
  }

  /**
   * RFC 7009: revoking a refresh token revokes its whole family; an access token only
   * itself. Returns false when the token was unknown (or issued to another client).
   */
  revokeToken(client: OAuthClient, token: string): boolean {
    const access = this.accessTokens.get(token);
    if (access) {
      const family = this.families.get(access.familyId);
      if (family?.clientId !== client.clientId) return false;
      this.accessTokens.delete(token);
      family.accessTokens.delete(token);
      this.counters.tokensRevoked++;
      return true;
    }
    const refresh = this.refreshTokens.get(token);
    if (refresh) {
      const family = this.families.get(refresh.familyId);
      if (family?.clientId !== client.clientId) return false;
      this.revokeFamily(family.id);
      return true;
    }
    return false;
  }

  /** GitHub's "delete an app authorization": every token this client holds for the account. */
  revokeGrant(client: OAuthClient, accountId: number): void {
    for (const family of this.families.values()) {
      if (family.clientId === client.clientId && family.accountId === accountId) this.revokeFamily(family.id);
    }
  }

  revokeFamily(familyId: string): void {
    const family = this.families.get(familyId);
    if (!family || family.revoked) return;
    family.revoked = true;
    this.counters.tokensRevoked += family.accessTokens.size + family.refreshTokens.size;
    for (const t of family.accessTokens) this.accessTokens.delete(t);
    for (const t of family.refreshTokens) this.refreshTokens.delete(t);
  }

  /** Control API: every access token (and optionally refresh token) expires now. */
  expireAll(includeRefreshTokens: boolean): number {
    const past = this.clock.now() - 1;
    let n = 0;
    for (const record of this.accessTokens.values()) {
      if (record.expiresAt > past) {
        record.expiresAt = past;
        n++;
      }
    }
    if (includeRefreshTokens) for (const record of this.refreshTokens.values()) record.expiresAt = past;
    return n;
  }
}
