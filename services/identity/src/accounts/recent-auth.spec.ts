import { describe, expect, it } from '@jest/globals';

import { assertRecentPasskeyUse } from './recent-auth.js';

describe('adding a passkey to a signed-in account', () => {
  const now = new Date('2026-11-25T10:00:00Z');

  it('is allowed right after a passkey use, and without any session (a new account)', () => {
    expect(() =>
      assertRecentPasskeyUse({ authenticatedAt: new Date(now.getTime() - 60_000) }, 300_000, now),
    ).not.toThrow();
    expect(() => assertRecentPasskeyUse(undefined, 300_000, now)).not.toThrow();
  });

  it('asks for the passkey again when the session is older than the limit', () => {
    expect(() => assertRecentPasskeyUse({ authenticatedAt: new Date(now.getTime() - 300_001) }, 300_000, now)).toThrow(
      expect.objectContaining({ code: 'reauthentication_required' }),
    );
  });
});
