import { TestClock } from '@context-gateway/clock/testing';
import { describe, expect, it } from '@jest/globals';

import { newCounters } from '../counters.js';
import { type OAuthClient, OAuthStore, s256 } from './oauth-store.js';

/** Token lifecycles on a controlled clock: what the int tests cannot wait for. */

const verifier = 'v'.repeat(43);
let n = 0;
const format = { accessToken: () => `at${++n}`, refreshToken: () => `rt${++n}` };

function setup(settings = { accessTokenTtlSeconds: 60, refreshTokenTtlSeconds: 3600, codeTtlSeconds: 30 }) {
  const clock = new TestClock(1_000_000);
  const counters = newCounters();
  const store = new OAuthStore(settings, format, counters, clock);
  const client = store.registerClient({
    clientId: 'c1',
    clientSecret: 's1',
    redirectUris: ['https://app/cb'],
    name: 'App',
  });
  const other = store.registerClient({
    clientId: 'c2',
    clientSecret: 's2',
    redirectUris: ['https://other/cb'],
    name: 'Other',
  });
  const code = (c: OAuthClient = client, accountId = 7) => {
    const pending = store.startAuthorization({
      clientId: c.clientId,
      redirectUri: c.redirectUris[0]!,
      scopes: ['a'],
      state: 'st',
      codeChallenge: s256(verifier),
    });
    return store.issueCode(pending, accountId);
  };
  const tokens = (c: OAuthClient = client, accountId = 7) => {
    const r = store.exchangeCode(c, code(c, accountId), c.redirectUris[0], verifier);
    if (!r.ok) throw new Error(r.reason);
    return r.tokens;
  };
  return { store, client, other, code, tokens, counters, advance: (ms: number) => clock.advance(ms) };
}

describe('OAuthStore', () => {
  it('a code expires after codeTtlSeconds', () => {
    const { store, client, code, advance } = setup();
    const c = code();
    advance(31_000);
    expect(store.exchangeCode(client, c, 'https://app/cb', verifier)).toEqual({ ok: false, reason: 'code_expired' });
  });

  it('another client cannot redeem a code, and its attempt does not burn it', () => {
    const { store, client, other, code } = setup();
    const c = code();
    expect(store.exchangeCode(other, c, 'https://app/cb', verifier)).toEqual({ ok: false, reason: 'client_mismatch' });
    expect(store.exchangeCode(client, c, 'https://app/cb', verifier).ok).toBe(true);
  });

  it('access tokens expire after accessTokenTtlSeconds; refresh tokens after theirs', () => {
    const { store, client, tokens, advance } = setup();
    const t = tokens();
    expect(store.checkAccessToken(t.accessToken)).toMatchObject({ status: 'ok', accountId: 7, scopes: ['a'] });
    advance(60_000);
    expect(store.checkAccessToken(t.accessToken)).toEqual({ status: 'expired' });
    advance(3_541_000);
    expect(store.refresh(client, t.refreshToken)).toEqual({ ok: false, reason: 'refresh_expired' });
  });

  it('refresh tokens of 0 lifetime never expire', () => {
    const { store, client, tokens, advance } = setup({
      accessTokenTtlSeconds: 60,
      refreshTokenTtlSeconds: 0,
      codeTtlSeconds: 30,
    });
    const t = tokens();
    advance(10 * 365 * 86_400_000);
    expect(store.refresh(client, t.refreshToken).ok).toBe(true);
  });

  it('rotation: the new refresh token works once, the old one is reuse and kills the family', () => {
    const { store, client, tokens, counters } = setup();
    const t1 = tokens();
    const r2 = store.refresh(client, t1.refreshToken);
    if (!r2.ok) throw new Error('refresh failed');
    // Access tokens issued before the refresh stay valid until they expire.
    expect(store.checkAccessToken(t1.accessToken).status).toBe('ok');
    expect(store.refresh(client, t1.refreshToken)).toEqual({ ok: false, reason: 'refresh_reused' });
    for (const t of [t1.accessToken, r2.tokens.accessToken]) expect(store.checkAccessToken(t).status).toBe('invalid');
    expect(store.refresh(client, r2.tokens.refreshToken).ok).toBe(false);
    expect(counters.tokensRefreshed).toBe(1);
  });

  it('another client cannot refresh or revoke a token it was not issued', () => {
    const { store, client, other, tokens } = setup();
    const t = tokens();
    expect(store.refresh(other, t.refreshToken)).toEqual({ ok: false, reason: 'refresh_unknown' });
    expect(store.revokeToken(other, t.accessToken)).toBe(false);
    expect(store.checkAccessToken(t.accessToken).status).toBe('ok');
    expect(store.refresh(client, t.refreshToken).ok).toBe(true);
  });

  it('revoking an access token ends only that token; a refresh token ends its family', () => {
    const { store, client, tokens } = setup();
    const a = tokens();
    const b = tokens();
    expect(store.revokeToken(client, a.accessToken)).toBe(true);
    expect(store.checkAccessToken(a.accessToken).status).toBe('invalid');
    expect(store.refresh(client, a.refreshToken).ok).toBe(true);
    expect(store.revokeToken(client, b.refreshToken)).toBe(true);
    expect(store.checkAccessToken(b.accessToken).status).toBe('invalid');
  });

  it('revoking a grant ends every family of that client and account, and no other', () => {
    const { store, client, other, tokens } = setup();
    const mine1 = tokens(client, 7);
    const mine2 = tokens(client, 7);
    const otherAccount = tokens(client, 8);
    const otherClient = tokens(other, 7);
    store.revokeGrant(client, 7);
    expect(store.checkAccessToken(mine1.accessToken).status).toBe('invalid');
    expect(store.checkAccessToken(mine2.accessToken).status).toBe('invalid');
    expect(store.checkAccessToken(otherAccount.accessToken).status).toBe('ok');
    expect(store.checkAccessToken(otherClient.accessToken).status).toBe('ok');
  });

  it('expireAll expires access tokens now, refresh tokens only when asked', () => {
    const { store, client, tokens } = setup();
    const t = tokens();
    expect(store.expireAll(false)).toBe(1);
    expect(store.checkAccessToken(t.accessToken).status).toBe('expired');
    const r = store.refresh(client, t.refreshToken);
    if (!r.ok) throw new Error(`refresh after expiry refused: ${r.reason}`);
    store.expireAll(true);
    expect(store.refresh(client, r.tokens.refreshToken)).toEqual({ ok: false, reason: 'refresh_expired' });
  });

  it('client authentication needs the exact secret', () => {
    const { store } = setup();
    expect(store.authenticateClient('c1', 's1')?.clientId).toBe('c1');
    expect(store.authenticateClient('c1', 's2')).toBeUndefined();
    expect(store.authenticateClient('c1', undefined)).toBeUndefined();
    expect(store.authenticateClient('nobody', 's1')).toBeUndefined();
  });

  it('a pending authorization expires after 10 minutes', () => {
    const { store, advance } = setup();
    const p = store.startAuthorization({
      clientId: 'c1',
      redirectUri: 'https://app/cb',
      scopes: [],
      state: undefined,
      codeChallenge: s256(verifier),
    });
    advance(9 * 60_000);
    expect(store.pendingAuthorization(p.id)).toBe(p);
    advance(2 * 60_000);
    expect(store.pendingAuthorization(p.id)).toBeUndefined();
  });
});
