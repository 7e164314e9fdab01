import { AppError } from '@context-gateway/errors';

/**
 * A signed-in browser may add a passkey to its account only if a passkey was used recently:
 * otherwise a stolen session cookie would be enough to plant a permanent credential. No
 * session at all is fine (that is creating a new account).
 */
export function assertRecentPasskeyUse(
  session: { authenticatedAt: Date } | undefined,
  maxAgeMs: number,
  now: Date,
): void {
  if (!session) return;
  if (now.getTime() - session.authenticatedAt.getTime() > maxAgeMs) {
    throw new AppError(
      'reauthentication_required',
      'Confirm with your passkey first: sign in again at /v1/auth/signin?prompt=login',
    );
  }
}
