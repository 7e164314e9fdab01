import { describe, expect, it } from '@jest/globals';

import { AppError } from './app-error.js';

describe('AppError', () => {
  it('maps its code to the catalog status', () => {
    expect(new AppError('payload_too_large').status).toBe(413);
    expect(new AppError('validation_failed', 'bad', [{ path: 'a', message: 'm' }]).problems).toHaveLength(1);
  });

  it('hides anything that is not an AppError behind internal, keeping the cause', () => {
    const cause = new Error('password=hunter2');
    const wrapped = AppError.from(cause);
    expect(wrapped.code).toBe('internal');
    expect(wrapped.message).not.toContain('hunter2');
    expect(wrapped.cause).toBe(cause);
  });

  it('turns an unknown wire code into internal rather than trusting it', () => {
    expect(AppError.fromWire('made_up', 'x').code).toBe('internal');
    expect(AppError.fromWire('not_found', 'x').code).toBe('not_found');
  });
});
