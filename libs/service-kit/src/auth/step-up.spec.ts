import { AppError } from '@context-gateway/errors';
import { z } from 'zod';

import { assertRecentPasskeyUse, personStepUpEnvShape } from './step-up.js';

describe('assertRecentPasskeyUse', () => {
  const now = Date.parse('2026-12-06T10:00:00Z');

  it('lets a passkey use within the window through, up to its last millisecond', () => {
    expect(() => assertRecentPasskeyUse(new Date(now - 60_000), 60_000, now)).not.toThrow();
  });

  it.each([
    ['older than the window', new Date(now - 60_001)],
    ['with no known passkey time', undefined],
  ])('refuses a session %s: reauthentication_required', (_, authenticatedAt) => {
    const failure = (() => {
      try {
        assertRecentPasskeyUse(authenticatedAt, 60_000, now);
      } catch (error) {
        return error;
      }
    })();
    expect(failure).toBeInstanceOf(AppError);
    expect((failure as AppError).code).toBe('reauthentication_required');
  });
});

describe('personStepUpEnvShape', () => {
  const schema = z.object(personStepUpEnvShape);

  it('defaults to five minutes and refuses a window under ten seconds', () => {
    expect(schema.parse({}).PERSON_STEP_UP_MAX_AGE_MS).toBe(300_000);
    expect(schema.safeParse({ PERSON_STEP_UP_MAX_AGE_MS: '5000' }).success).toBe(false);
  });
});
