import { AppError } from '@context-gateway/errors';
import { z } from 'zod';

/**
 * The one setting for how recent a person's passkey use must be before they may change who
 * can do what with their data (allow, revoke or delete a connection's access, change their
 * rules, add or remove a passkey, delete their account): identity, the connection-broker
 * and the gateway each spread this into their env schema, so one value governs all three.
 */
export const personStepUpEnvShape = {
  /** Milliseconds; at least 10 s, default 5 minutes. */
  PERSON_STEP_UP_MAX_AGE_MS: z.coerce
    .number()
    .int()
    .min(10_000)
    .default(5 * 60_000),
};

/**
 * A live session is not enough for these changes (a stolen or forgotten cookie must not be):
 * the session must have been opened by a passkey use at most `maxAgeMs` before `now`.
 * `reauthentication_required` otherwise, and the person confirms at
 * /v1/auth/signin?prompt=login. A session with no known passkey time is never recent.
 */
export function assertRecentPasskeyUse(authenticatedAt: Date | undefined, maxAgeMs: number, now: number): void {
  if (!authenticatedAt || now - authenticatedAt.getTime() > maxAgeMs)
    throw new AppError(
      'reauthentication_required',
      'Confirm with your passkey first: sign in again at /v1/auth/signin?prompt=login',
    );
}
