import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';

import { outcomeOf } from './audit-route.interceptor.js';

describe('audit outcome of a failed request', () => {
  it('is a denial for 401/403/404 and *_denied codes, an error otherwise, always with the code', () => {
    expect(outcomeOf(new AppError('unauthenticated', 'x'))).toEqual({
      outcome: 'denied',
      errorCode: 'unauthenticated',
    });
    expect(outcomeOf(new AppError('not_found', 'x'))).toEqual({ outcome: 'denied', errorCode: 'not_found' });
    expect(outcomeOf(new AppError('policy_denied', 'x'))).toEqual({ outcome: 'denied', errorCode: 'policy_denied' });
    expect(outcomeOf(new AppError('validation_failed', 'x'))).toEqual({
      outcome: 'error',
      errorCode: 'validation_failed',
    });
    expect(outcomeOf(new Error('boom'))).toEqual({ outcome: 'error', errorCode: 'internal' });
  });
});
