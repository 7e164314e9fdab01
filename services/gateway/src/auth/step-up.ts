import { AppError } from '@context-gateway/errors';

/**
 * What changes who may do what with a person's data needs a passkey use within
 * `maxAgeMs`, not only a live session (a stolen or forgotten cookie must not be enough):
 * `reauthentication_required` otherwise, and the person confirms at
 * /v1/auth/signin?prompt=login.
 */
export function assertRecentPasskeyUse(authenticatedAt: Date, maxAgeMs: number, now: number): void {
  if (now - authenticatedAt.getTime() > maxAgeMs)
    throw new AppError(
      'reauthentication_required',
      'Confirm with your passkey first: sign in again at /v1/auth/signin?prompt=login',
    );
}
